package ch.ungleich.uncloud.hook.engine;

import ch.ungleich.uncloud.hook.UncloudException;
import ch.ungleich.uncloud.hook.model.DomainPolicy;
import ch.ungleich.uncloud.hook.model.VmTaps;
import ch.ungleich.uncloud.hook.model.NicPolicy;
import ch.ungleich.uncloud.hook.nft.InboundScript;
import ch.ungleich.uncloud.hook.nft.NftBackend;
import ch.ungleich.uncloud.hook.nft.NftGuard;
import ch.ungleich.uncloud.hook.nft.NftRunner;
import ch.ungleich.uncloud.hook.nft.NftScript;
import ch.ungleich.uncloud.hook.state.Owner;
import ch.ungleich.uncloud.hook.state.Plan;
import ch.ungleich.uncloud.hook.state.StateStore;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Function;
import java.util.function.Supplier;

/**
 * Per-domain changes of the nft backend: plan with {@link NftBackend}, apply one transaction, commit
 * the records, under the host lock. Used by the hook ({@code start}, {@code reconnect}, {@code
 * stopped}, {@code release}), {@code hook-batch} and the agent (hot-plug, detach, metadata change).
 *
 * <p>Failures are {@link UncloudException}s (nft refused the script: nothing changed and no record
 * was written; the lock was not to be had: nothing was tried).
 */
public final class Rules {
  private final StateStore store;
  private final NftRunner nft;
  private final VmTaps vmTaps;
  private final Supplier<? extends Collection<String>> links;

  /**
   * @param vmTaps the {@code vm_taps} host setting: the guard patterns the dispatch chain should have
   * @param links the host's interface names now (read only when a guard pattern is not installed yet)
   */
  public Rules(StateStore store, NftRunner nft, VmTaps vmTaps, Supplier<? extends Collection<String>> links) {
    this.store = store;
    this.nft = nft;
    this.vmTaps = vmTaps;
    this.links = links;
  }

  /** Installs a domain's rules and releases the taps it no longer has (hook {@code start}/{@code reconnect}). */
  public Plan start(DomainPolicy p) {
    try (StateStore.Lock l = store.lock()) {
      return startLocked(p);
    }
  }

  /**
   * Like {@link #start(DomainPolicy)}, for a policy read from libvirt before the lock was taken (the
   * agent): under the lock, a NIC whose tap is gone, or now carries another NIC's MAC, is left out,
   * so a domain that stopped meanwhile (its hook's {@code stopped end} removed its rules) gets no
   * rules back, and a {@code vnetN} name libvirt gave to another domain is not taken from it.
   *
   * @param tapMac the host-side MAC of an interface now, null when there is none
   */
  public Plan startLive(DomainPolicy p, Function<String, String> tapMac) {
    try (StateStore.Lock l = store.lock()) {
      return startLocked(live(p, tapMac));
    }
  }

  private Plan startLocked(DomainPolicy p) {
    Plan plan = NftBackend.start(p, store.taps(p.uuid()), store::owner, vmTaps.patterns());
    if (!plan.script().isEmpty()) {
      NftGuard.Decision d = guard(plan.claim().keySet(), plan.release());
      if (!d.patterns().equals(vmTaps.patterns())) {
        plan = NftBackend.start(p, store.taps(p.uuid()), store::owner, d.patterns()).withNote(d.note());
      }
      InboundScript.Change in = InboundScript.plan(p, plan, store::inbound);
      nft.apply(InboundScript.append(plan.script(), InboundScript.prelude(), in));
      store.commit(p.uuid(), plan);
      store.commitInbound(in.records());
      return plan;
    }
    store.commit(p.uuid(), plan);
    return plan;
  }

  /**
   * Which vm_taps patterns a transaction that gives {@code covered} their elements and takes {@code
   * released}'s away may render ({@link NftGuard}): one {@code nft list chain} of the dispatch chain,
   * which costs the same at any size; the interfaces and the map only when a pattern is new.
   */
  private NftGuard.Decision guard(Set<String> covered, Collection<String> released) {
    if (vmTaps.isOff()) {
      return new NftGuard.Decision(List.of(), Map.of());
    }
    String chain = restoring ? null
        : Reconcile.listOurs(nft, "list", "chain", NftScript.FAMILY, NftScript.TABLE, NftScript.BASE_CHAIN);
    List<String> installed = chain == null ? List.of() : NftGuard.installed(chain);
    if (installed.containsAll(vmTaps.patterns())) {
      return new NftGuard.Decision(vmTaps.patterns(), Map.of());
    }
    return NftGuard.decide(vmTaps.patterns(), installed, links.get(), covered, Set.copyOf(released), () -> {
      String map = chain == null ? null : Reconcile.listOurs(nft, "list", "map", NftScript.FAMILY, NftScript.TABLE, NftScript.MAP);
      return map == null ? Set.of() : NftGuard.elements(map);
    });
  }

  /** Removes every rule the domain owns (hook {@code stopped}/{@code release}); tap takeovers stay. */
  public Plan stop(String uuid) {
    try (StateStore.Lock l = store.lock()) {
      Plan plan = NftBackend.stop(uuid, store.taps(uuid), store::owner);
      InboundScript.Change in = InboundScript.plan(null, plan, store::inbound);
      if (!plan.script().isEmpty()) {
        nft.apply(InboundScript.append(plan.script(), InboundScript.ensure(), in));
      }
      store.commit(uuid, plan);
      store.commitInbound(in.records());
      return plan;
    }
  }

  /**
   * What {@link #startAll} did: the plans of the applied domains in the policies' order; {@code
   * combinedFailed} is nft's refusal of the one transaction (then each domain was applied on its own,
   * and {@code failures} are those that failed alone), null when it was one transaction; {@code
   * notLocked} is the error when the host lock could not be had (then nothing was tried), else null.
   */
  public record Batch(
      List<DomainPolicy> applied,
      List<Plan> plans,
      UncloudException combinedFailed,
      List<Failure> failures,
      UncloudException notLocked) {
    /** Whether everything went in one transaction. */
    public boolean together() {
      return combinedFailed == null && notLocked == null;
    }
  }

  /** One domain that could not be applied in {@link #startAll}'s fallback. */
  public record Failure(DomainPolicy policy, UncloudException error) {}

  /**
   * Installs many domains in ONE transaction under one lock (hook-batch after a libvirtd restart).
   * Each is planned against the records as the earlier plans of the batch leave them, so a tap handed
   * from one domain to another within the batch ends with its new owner in either order. If nft refuses
   * the combined script, each domain is applied on its own (what one call per domain would do) and
   * only the failing ones are reported.
   */
  public Batch startAll(List<DomainPolicy> policies) {
    return startAll(policies, null);
  }

  /**
   * {@link #startAll} for policies read from libvirt before the lock was taken (the agent, a burst of
   * events): under the lock each loses the NICs whose tap is gone or carries another NIC's MAC now,
   * as in {@link #startLive}.
   */
  public Batch startAllLive(List<DomainPolicy> policies, Function<String, String> tapMac) {
    return startAll(policies, tapMac);
  }

  /**
   * The first of the two transactions that restore a lost table (the agent): table, map, dispatch
   * rule and the vm_taps guard, plus one rule dropping the given taps that no guard pattern matches
   * (operator-named taps). With the map still empty every VM tap is dropped, uplinks and the host
   * pass: no spoofed frame is forwarded from here on, at the cost of the VMs' own traffic until
   * {@link #restoreAll} (the second transaction) is in. A few lines whatever the number of ports, so
   * it is in within milliseconds; nothing is recorded (the records stay what the second one makes).
   *
   * @return whether anything was applied (nothing to drop: no guard pattern and no tap)
   */
  public boolean failClosed(Collection<String> taps) {
    List<String> extra = new ArrayList<>();
    for (String t : new java.util.TreeSet<>(taps)) {
      if (t != null && vmTaps.patterns().stream().noneMatch(p -> VmTaps.matches(p, t))) {
        extra.add("\"" + NftScript.chain(t).substring("port-".length()) + "\"");
      }
    }
    if (vmTaps.patterns().isEmpty() && extra.isEmpty()) {
      return false;
    }
    StringBuilder script = new StringBuilder(new NftScript().prelude(vmTaps.patterns()).render());
    if (!extra.isEmpty()) {
      script.append("add rule ").append(NftScript.FAMILY).append(' ').append(NftScript.TABLE).append(' ')
          .append(NftScript.BASE_CHAIN).append(" iifname { ").append(String.join(", ", extra))
          .append(" } counter drop comment \"agent: restoring, the rules of these VM taps follow\"\n");
    }
    try (StateStore.Lock l = store.lock()) {
      nft.apply(script.toString());
    }
    return true;
  }

  /**
   * The second transaction after a lost table: every given domain installed in ONE transaction as
   * {@link #startAllLive} does, except that the vm_taps guard is decided as if none were installed
   * (the one {@link #failClosed} put in is not a sign that every VM tap has an element). No planning
   * against the kernel: what the kernel lost is all of it.
   */
  public Batch restoreAll(List<DomainPolicy> policies, Function<String, String> tapMac) {
    restoring = true;
    try {
      return startAll(policies, tapMac);
    } finally {
      restoring = false;
    }
  }

  /** Set while {@link #restoreAll} runs: the guard decision ignores the dispatch chain's guard rules. */
  private boolean restoring;

  /**
   * Puts the inbound tables back as the records say (the agent, after a foreign transaction removed
   * something of them): the shared chains rewritten, the sets ensured and every recorded tap's
   * elements added, in one transaction under the lock, so a tap whose record a hook call removed
   * meanwhile gets nothing back. If nft refuses that (an element that overlaps a foreign one), both
   * tables are rebuilt with the recorded elements instead.
   *
   * @return the number of elements in the transaction
   */
  public int restoreInbound() {
    try (StateStore.Lock l = store.lock()) {
      List<String> elements = new ArrayList<>();
      for (String tap : store.inboundTaps()) {
        elements.addAll(store.inbound(tap));
      }
      String lines = String.join("\n", InboundScript.add(elements));
      try {
        nft.apply(String.join("\n", InboundScript.prelude()) + "\n" + (lines.isEmpty() ? "" : lines + "\n"));
      } catch (UncloudException e) {
        nft.apply(String.join("\n", InboundScript.rebuild()) + "\n" + (lines.isEmpty() ? "" : lines + "\n"));
      }
      return elements.size();
    }
  }

  private Batch startAll(List<DomainPolicy> read, Function<String, String> tapMac) {
    StateStore.Lock lock;
    try {
      lock = store.lock();
    } catch (UncloudException e) {
      return new Batch(List.of(), List.of(), null, List.of(), e);
    }
    try (lock) {
      List<DomainPolicy> policies = tapMac == null ? read : read.stream().map(p -> live(p, tapMac)).toList();
      UncloudException[] refused = new UncloudException[1];
      Batch b = together(policies, refused);
      if (b != null) {
        return b;
      }
      UncloudException combined = refused[0];
      List<DomainPolicy> applied = new ArrayList<>();
      List<Plan> plans = new ArrayList<>();
      List<Failure> failures = new ArrayList<>();
      for (DomainPolicy p : policies) {
        try {
          plans.add(startLocked(p));
          applied.add(p);
        } catch (UncloudException e) {
          failures.add(new Failure(p, e));
        }
      }
      return new Batch(List.copyOf(applied), List.copyOf(plans), combined, List.copyOf(failures), null);
    }
  }

  /** The combined transaction; null with nft's refusal in {@code refused[0]} (then nothing changed). */
  private Batch together(List<DomainPolicy> policies, UncloudException[] refused) {
    Map<String, Owner> owners = new HashMap<>();
    List<String> guard = vmTaps.patterns();
    List<Plan> plans = planAll(policies, guard, owners);
    String note = null;
    if (plans.stream().anyMatch(pl -> !pl.script().isEmpty())) {
      Set<String> covered = new HashSet<>();
      Set<String> released = new HashSet<>();
      owners.forEach((t, o) -> (o == null ? released : covered).add(t));
      NftGuard.Decision d = guard(covered, released);
      if (!d.patterns().equals(vmTaps.patterns())) {
        owners.clear();
        guard = d.patterns();
        plans = planAll(policies, guard, owners);
        note = d.note();
      }
    }
    String prelude = new NftScript().prelude(guard).render();
    StringBuilder script = new StringBuilder();
    Map<String, List<String>> inbound = new HashMap<>();
    List<InboundScript.Change> inChanges = new ArrayList<>();
    for (int i = 0; i < plans.size(); i++) {
      Plan plan = plans.get(i);
      String s = plan.script();
      if (!s.isEmpty()) {
        script.append(script.length() == 0 ? prelude : "");
        script.append(s.startsWith(prelude) ? s.substring(prelude.length()) : s);
        InboundScript.Change c = InboundScript.plan(policies.get(i), plan,
            t -> inbound.containsKey(t) ? inbound.get(t) : store.inbound(t));
        inChanges.add(c);
        inbound.putAll(c.records());
      }
    }
    // one change for the batch: the elements of every domain grouped per set (one nft command per set)
    script.append(InboundScript.append("", InboundScript.prelude(), InboundScript.Change.of(inChanges)));
    if (note != null && !plans.isEmpty()) {
      plans.set(0, plans.get(0).withNote(note));
    }
    if (script.length() > 0) {
      try {
        nft.apply(script.toString());
      } catch (UncloudException e) {
        refused[0] = e;
        return null;
      }
    }
    for (int i = 0; i < plans.size(); i++) {
      store.commit(policies.get(i).uuid(), plans.get(i));
    }
    store.commitInbound(inbound);
    return new Batch(List.copyOf(policies), List.copyOf(plans), null, List.of(), null);
  }

  /**
   * Plans each domain against the records as the earlier plans leave them ({@code owners}: tap to its
   * owner after the batch, null when released), so a tap handed from one domain to another within the
   * batch ends with its new owner in either order.
   */
  private List<Plan> planAll(List<DomainPolicy> policies, List<String> guard, Map<String, Owner> owners) {
    Map<String, List<String>> domainTaps = new HashMap<>();
    Function<String, Owner> ownerOf = t -> owners.containsKey(t) ? owners.get(t) : store.owner(t);
    List<Plan> plans = new ArrayList<>();
    for (DomainPolicy p : policies) {
      List<String> previous = domainTaps.containsKey(p.uuid()) ? domainTaps.get(p.uuid()) : store.taps(p.uuid());
      Plan plan = NftBackend.start(p, previous, ownerOf, guard);
      for (String t : plan.release()) {
        owners.put(t, null);
      }
      owners.putAll(plan.claim());
      domainTaps.put(p.uuid(), plan.domainTaps());
      plans.add(plan);
    }
    return plans;
  }

  /** The policy without the NICs whose tap is gone or carries another NIC's MAC now. */
  static DomainPolicy live(DomainPolicy p, Function<String, String> tapMac) {
    List<NicPolicy> nics = new ArrayList<>();
    for (NicPolicy n : p.nics()) {
      if (n.tap() != null) {
        String hostMac = tapMac.apply(n.tap());
        if (hostMac == null || NftBackend.isLibvirtTap(hostMac) && !NftBackend.sameNic(hostMac, n.mac().text())) {
          continue;
        }
      }
      nics.add(n);
    }
    return nics.size() == p.nics().size() ? p : new DomainPolicy(p.name(), p.uuid(), List.copyOf(nics), p.warnings());
  }
}
