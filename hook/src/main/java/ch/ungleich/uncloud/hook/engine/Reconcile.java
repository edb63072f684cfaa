package ch.ungleich.uncloud.hook.engine;

import ch.ungleich.uncloud.hook.ExitCodes;
import ch.ungleich.uncloud.hook.UncloudException;
import ch.ungleich.uncloud.hook.model.DomainPolicy;
import ch.ungleich.uncloud.hook.model.NicPolicy;
import ch.ungleich.uncloud.hook.model.VmTaps;
import ch.ungleich.uncloud.hook.nft.InboundDrift;
import ch.ungleich.uncloud.hook.nft.InboundScript;
import ch.ungleich.uncloud.hook.nft.InboundState;
import ch.ungleich.uncloud.hook.nft.NftBackend;
import ch.ungleich.uncloud.hook.nft.NftJson;
import ch.ungleich.uncloud.hook.nft.NftRunner;
import ch.ungleich.uncloud.hook.nft.NftScript;
import ch.ungleich.uncloud.hook.nft.NftState;
import ch.ungleich.uncloud.hook.nft.ReconcilePlan;
import ch.ungleich.uncloud.hook.state.Owner;
import ch.ungleich.uncloud.hook.state.StateStore;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Function;
import java.util.function.Supplier;

/**
 * The whole host at once: makes our table what the running domains demand (one transaction) and the
 * ownership records match ({@code reconcile}, doctor's drift check, the agent's resync after a
 * (re)connect, its periodic backstop and its repair after a lost ruleset). libvirt has been read
 * already ({@link Desired}); under the lock nft and the records are read, planned against, changed.
 *
 * <p>Nothing to change is the common case (every agent backstop period on every host), and finding it
 * by listing the table and a scratch load of the desired one costs seconds at 1000 ports. So whenever
 * the full path leaves the kernel exactly as planned, it records a {@link Fingerprint}: the nf_tables
 * generation (raised by every committed transaction in the namespace) and a digest of all the other
 * inputs of the pure planner. A later call whose generation and digest are the same would plan
 * against identical inputs: it returns that same empty plan without listing anything. Any difference
 * (a hook call, another tool's transaction, a tap's MAC, a record, the metadata, an upgrade) takes the
 * full path, which finds drift exactly as before.
 */
public final class Reconcile {
  private final Desired desired;
  private final NftRunner nft;
  private final StateStore store;
  private final Function<String, String> tapMac;
  private final VmTaps vmTaps;
  private final Timings timings;
  private String script;

  /**
   * @param tapMac an interface's host-side MAC now, null when there is none
   * @param vmTaps the {@code vm_taps} host setting: knowing every running domain, reconcile installs the
   *     guard together with their elements (one transaction), so it never cuts a running VM off
   */
  public Reconcile(Desired desired, NftRunner nft, StateStore store, Function<String, String> tapMac, VmTaps vmTaps) {
    this(desired, nft, store, tapMac, vmTaps, Timings.OFF);
  }

  /** {@link #Reconcile(Desired, NftRunner, StateStore, Function, VmTaps)} that records where its time goes. */
  public Reconcile(
      Desired desired, NftRunner nft, StateStore store, Function<String, String> tapMac, VmTaps vmTaps, Timings timings) {
    this.desired = desired;
    this.nft = nft;
    this.store = store;
    // one reading per tap and call: the planner and the fingerprint's digest see the same MACs
    Map<String, Optional<String>> seen = new ConcurrentHashMap<>();
    this.tapMac = tap -> tap == null ? null : seen.computeIfAbsent(tap, t -> Optional.ofNullable(tapMac.apply(t))).orElse(null);
    this.vmTaps = vmTaps;
    this.timings = timings;
  }

  /** The whole desired ruleset, rendered once per reconcile (scratch load and fingerprint share it). */
  private synchronized String desiredScript() {
    if (script == null) {
      script = timed("render desired", () -> NftBackend.desiredScript(desired.policies(), vmTaps.patterns()));
    }
    return script;
  }

  /**
   * The desired ruleset as nft stores it: loaded into a scratch network namespace, listed there. Not
   * when our dispatch chain is missing (host boot, {@code nft flush ruleset}; {@code nft list chain}
   * costs the same at any size): then everything is installed and nothing compared, and at 1000
   * ports the scratch load and its listing cost more than all the rest of reconcile.
   */
  public NftState canonical() {
    if (!timed("dispatch chain check", () -> dispatchChainExists(nft))) {
      return NftState.ABSENT;
    }
    String s = desiredScript();
    String json = timed("scratch load + list", () -> nft.canonical(s));
    return timed("parse canonical", () -> NftJson.parse(json));
  }

  /**
   * Plans against the current state without the lock and without changing anything (doctor, --dry-run).
   * A matching fingerprint gives its empty plan at once; otherwise the canonical form is made while
   * nft lists our table: two nft processes, one per core.
   */
  public ReconcilePlan plan() {
    Map<String, Owner> records = timed("read records", store::records);
    ReconcilePlan same = unchanged(timed("generation", nft::generation), records);
    if (same != null) {
      return with(same, inboundFromRecords(records));
    }
    CompletableFuture<NftState> canonical = CompletableFuture.supplyAsync(this::canonical);
    ReconcilePlan p = plan(observeTimed(), canonical, records);
    return with(p, timed("inbound", () -> inboundDrift(p.records())));
  }

  /**
   * {@link #plan()} with nft's form of the desired ruleset made already (doctor loads it for its kernel
   * check); the fingerprint is not used: doctor compares what is installed, every time.
   */
  public ReconcilePlan plan(NftState canonical) {
    ReconcilePlan p = plan(observeTimed(), CompletableFuture.completedFuture(canonical), timed("read records", store::records));
    return with(p, inboundDrift(p.records()));
  }

  private ReconcilePlan plan(NftState observed, CompletableFuture<NftState> canonical, Map<String, Owner> records) {
    NftState c;
    long t0 = System.nanoTime();
    try {
      c = canonical.join();
    } catch (CompletionException e) {
      throw e.getCause() instanceof RuntimeException r ? r : e;
    }
    timings.add("wait for canonical", System.nanoTime() - t0);
    return timed("plan", () -> NftBackend.reconcile(
        desired.policies(), desired.running(), desired.untouchable(), observed, c, records, tapMac, vmTaps.patterns()));
  }

  /**
   * Plans and applies under the host lock: one nft transaction, then the records. The fingerprint is
   * checked first (under the lock, so no hook call is half done); without a match the canonical form is
   * made while nft lists our table. Whatever a hook call changes in between is in what is observed
   * under the lock, and the planner handles both orders.
   */
  public ReconcilePlan apply() {
    try (StateStore.Lock l = timed("lock", store::lock)) {
      Optional<String> before = timed("generation", nft::generation);
      Map<String, Owner> records = timed("read records", store::records);
      ReconcilePlan same = unchanged(before, records);
      if (same != null) {
        // the fingerprint covers the anti-spoofing inputs; the inbound elements are compared on their
        // own, with the records (the kernel cannot differ from them: no transaction since the last
        // reconcile, which compared them with the kernel)
        Inbound in = inboundFromRecords(records);
        if (!in.script().isEmpty()) {
          nft.apply(String.join("\n", in.script()) + "\n");
          store.fingerprint(null);
        }
        store.commitInbound(in.records());
        return with(same, in);
      }
      CompletableFuture<NftState> canonical = CompletableFuture.supplyAsync(this::canonical);
      NftState observed = observeTimed();
      Optional<String> listed = nft.generation();
      ReconcilePlan p = plan(observed, canonical, records);
      // the digest is made while nft applies (the boot case renders nothing else)
      CompletableFuture<String> digest =
          CompletableFuture.supplyAsync(() -> timed("digest", () -> inputs(p.records(), taps(p.records()))));
      String after = before.orElse(null);
      // the delivery filter and security groups (issue 17) go into the same transaction
      Inbound in = timed("inbound", () -> inboundDrift(p.records()));
      ReconcilePlan all = with(p, in);
      String script = all.script();
      if (!script.isEmpty()) {
        timed("nft apply", () -> {
          nft.apply(script);
          return null;
        });
        after = nft.generation().orElse(null);
      }
      timed("write records", () -> {
        store.replaceAll(p.records());
        store.commitInbound(in.records());
        return null;
      });
      // trustworthy only when nothing but our own transaction (if any) committed since `before`: then the
      // kernel holds exactly what the plan made, and planning again against it would give an empty plan
      boolean exact = before.isPresent() && before.equals(listed)
          && (script.isEmpty() ? before.get().equals(after) : Fingerprint.next(before.get(), after));
      Fingerprint f = exact ? new Fingerprint(after, join(digest), taps(p.records()), p.notes()) : null;
      timed("write fingerprint", () -> {
        store.fingerprint(f == null ? null : f.encode());
        return null;
      });
      return all;
    }
  }

  /**
   * The inbound part of a reconcile: lines for the transaction (after the anti-spoofing script), what
   * they change, and every tap's record once applied.
   */
  record Inbound(List<String> script, List<ReconcilePlan.Change> changes, Map<String, List<String>> records) {}

  /** {@code p} with the inbound part added to its script and changes. */
  private static ReconcilePlan with(ReconcilePlan p, Inbound in) {
    if (in.script().isEmpty() && in.changes().isEmpty()) {
      return p;
    }
    StringBuilder b = new StringBuilder(p.script());
    in.script().forEach(l -> b.append(l).append('\n'));
    List<ReconcilePlan.Change> changes = new java.util.ArrayList<>(p.changes());
    changes.addAll(in.changes());
    return new ReconcilePlan(b.toString(), List.copyOf(changes), p.notes(), p.records());
  }

  /**
   * The inbound tables compared with the kernel ({@link InboundDrift}): both listed, the prelude loaded
   * into a scratch namespace meanwhile (two nft processes, one per core).
   */
  private Inbound inboundDrift(Map<String, Owner> records) {
    CompletableFuture<InboundState> canonical = CompletableFuture.supplyAsync(
        () -> InboundState.parse(nft.canonicalInbound(String.join("\n", InboundScript.prelude()) + "\n")));
    InboundState observed = InboundState.parse(
        listOurs(nft, "-j", "-p", "list", "table", "bridge", InboundScript.TABLE),
        listOurs(nft, "-j", "-p", "list", "table", "inet", InboundScript.TABLE));
    Map<String, List<String>> want = inboundWanted(records);
    InboundDrift.Result d = InboundDrift.compare(want, records, observed, join(canonical));
    return new Inbound(d.script(), d.changes(), inboundRecords(want));
  }

  /** The records of every tap wanted, and none for the other recorded taps. */
  private Map<String, List<String>> inboundRecords(Map<String, List<String>> want) {
    Map<String, List<String>> records = new TreeMap<>(want);
    for (String tap : store.inboundTaps()) {
      records.putIfAbsent(tap, List.of());
    }
    return records;
  }

  /**
   * The inbound elements compared with the records only (the fingerprint matched: no transaction since
   * the last reconcile compared the kernel with them); the tables' presence is checked all the same.
   */
  private Inbound inboundFromRecords(Map<String, Owner> records) {
    InboundScript.Change c = inbound(records);
    List<String> script = c.isEmpty() ? List.of() : new java.util.ArrayList<>(head());
    if (!c.isEmpty()) {
      script.addAll(c.lines());
    }
    List<ReconcilePlan.Change> changes = new java.util.ArrayList<>();
    if (!inboundPresent && !c.isEmpty()) {
      changes.add(new ReconcilePlan.Change(InboundDrift.ACTION, null, null, null,
          "inbound tables were missing: both rebuilt with every NIC's elements"));
    } else if (!c.isEmpty()) {
      for (Map.Entry<String, List<String>> e : c.records().entrySet()) {
        List<String> before = store.inbound(e.getKey());
        if (!before.equals(e.getValue())) {
          Owner o = records.get(e.getKey());
          changes.add(new ReconcilePlan.Change(InboundDrift.ACTION, e.getKey(), o == null ? null : o.domain(),
              o == null ? null : o.uuid(), "inbound elements differ from the metadata (" + before.size() + " installed, "
                  + e.getValue().size() + " expected)"));
        }
      }
    }
    return new Inbound(List.copyOf(script), List.copyOf(changes), c.records());
  }

  /**
   * The inbound elements (delivery filter, security groups) every filtered tap must have: from its
   * NIC's policy, or, for a tap kept as it was (its domain's metadata is invalid), what it has now.
   */
  private Map<String, List<String>> inboundWanted(Map<String, Owner> records) {
    Map<String, NicPolicy> byTap = new java.util.HashMap<>();
    for (DomainPolicy dp : desired.policies()) {
      for (NicPolicy n : dp.nics()) {
        if (n.hasChain()) {
          byTap.put(dp.uuid() + " " + n.tap(), n);
        }
      }
    }
    Map<String, List<String>> want = new TreeMap<>();
    for (Map.Entry<String, Owner> e : records.entrySet()) {
      NicPolicy n = byTap.get(e.getValue().uuid() + " " + e.getKey());
      want.put(e.getKey(), n != null ? InboundScript.elements(n) : store.inbound(e.getKey()));
    }
    return want;
  }

  /** What the inbound tables need to match the records' taps; checks that both tables exist. */
  private InboundScript.Change inbound(Map<String, Owner> records) {
    inboundPresent = listOurs(nft, "list", "chain", "bridge", InboundScript.TABLE, "deliver") != null
        && listOurs(nft, "list", "chain", "inet", InboundScript.TABLE, "ingress-decide") != null;
    return InboundScript.reconcile(inboundWanted(records), store::inbound, store.inboundTaps(), inboundPresent);
  }

  /** The lines before the inbound elements: the sets, or the whole tables rebuilt when they were missing. */
  private List<String> head() {
    return inboundPresent ? InboundScript.ensure() : InboundScript.rebuild();
  }

  private boolean inboundPresent;

  /** The recorded empty plan when the fingerprint matches the kernel's generation and the inputs now; else null. */
  private ReconcilePlan unchanged(Optional<String> generation, Map<String, Owner> records) {
    if (generation.isEmpty()) {
      return null;
    }
    Fingerprint f = timed("read fingerprint", () -> Fingerprint.decode(store.fingerprint()));
    if (f == null || !f.generation().equals(generation.get())) {
      return null;
    }
    if (!timed("digest", () -> inputs(records, f.taps())).equals(f.inputs())) {
      return null;
    }
    timings.add("unchanged: fingerprint matches", 0);
    return new ReconcilePlan("", List.of(), f.notes(), Map.copyOf(records));
  }

  private String inputs(Map<String, Owner> records, List<String> taps) {
    return Fingerprint.inputs(nft.identity(), desiredScript(), desired, records, taps, tapMac);
  }

  private List<String> taps(Map<String, Owner> records) {
    Set<String> mine = new TreeSet<>();
    for (DomainPolicy p : desired.policies()) {
      for (NicPolicy n : p.nics()) {
        if (n.hasChain()) {
          mine.add(n.tap());
        }
      }
    }
    return Fingerprint.taps(mine, desired.untouchable(), records.keySet());
  }

  private static <T> T join(CompletableFuture<T> f) {
    try {
      return f.join();
    } catch (CompletionException e) {
      throw e.getCause() instanceof RuntimeException r ? r : e;
    }
  }

  private <T> T timed(String phase, Supplier<T> s) {
    long t0 = System.nanoTime();
    T v = s.get();
    timings.add(phase, System.nanoTime() - t0);
    return v;
  }

  private NftState observeTimed() {
    String json = timed("nft -j list", () -> listOurs(nft, "-j", "list", "table", NftScript.FAMILY, NftScript.TABLE));
    return json == null ? NftState.ABSENT : timed("parse observed", () -> NftJson.parse(json));
  }

  /** Whether our dispatch chain exists: {@code nft list chain} of one chain, as fast at 10 000 ports as at none. */
  public static boolean dispatchChainExists(NftRunner nft) {
    return listOurs(nft, "list", "chain", NftScript.FAMILY, NftScript.TABLE, NftScript.BASE_CHAIN) != null;
  }

  /** Our table now; {@link NftState#ABSENT} when there is none. */
  public static NftState observe(NftRunner nft) {
    String json = listOurs(nft, "-j", "list", "table", NftScript.FAMILY, NftScript.TABLE);
    return json == null ? NftState.ABSENT : NftJson.parse(json);
  }

  /** nft's output for a listing of our table or one of its chains; null when that does not exist. */
  static String listOurs(NftRunner nft, String... args) {
    try {
      return nft.run(args);
    } catch (UncloudException e) {
      if (e.getMessage().contains("No such file or directory")) {
        return null;
      }
      throw new UncloudException(ExitCodes.APPLY_FAILED, "cannot list our nft table: " + e.getMessage());
    }
  }
}
