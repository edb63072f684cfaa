package ch.ungleich.uncloud.hook.engine;

import ch.ungleich.uncloud.hook.ExitCodes;
import ch.ungleich.uncloud.hook.UncloudException;
import ch.ungleich.uncloud.hook.model.DomainPolicy;
import ch.ungleich.uncloud.hook.model.NicPolicy;
import ch.ungleich.uncloud.hook.model.VmTaps;
import ch.ungleich.uncloud.hook.nft.InboundScript;
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
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.function.Function;

/**
 * The whole host at once: makes our table what the running domains demand (one transaction) and the
 * ownership records match ({@code reconcile}, doctor's drift check, the agent's resync after a
 * (re)connect, its periodic backstop and its repair after a lost ruleset). libvirt has been read
 * already ({@link Desired}); under the lock nft and the records are read, planned against, changed.
 */
public final class Reconcile {
  private final Desired desired;
  private final NftRunner nft;
  private final StateStore store;
  private final Function<String, String> tapMac;
  private final VmTaps vmTaps;

  /**
   * @param tapMac an interface's host-side MAC now, null when there is none
   * @param vmTaps the {@code vm_taps} host setting: knowing every running domain, reconcile installs the
   *     guard together with their elements (one transaction), so it never cuts a running VM off
   */
  public Reconcile(Desired desired, NftRunner nft, StateStore store, Function<String, String> tapMac, VmTaps vmTaps) {
    this.desired = desired;
    this.nft = nft;
    this.store = store;
    this.tapMac = tapMac;
    this.vmTaps = vmTaps;
  }

  /**
   * The desired ruleset as nft stores it: loaded into a scratch network namespace, listed there. Not
   * when our dispatch chain is missing (host boot, {@code nft flush ruleset}; {@code nft list chain}
   * costs the same at any size): then everything is installed and nothing compared, and at 1000
   * ports the scratch load and its listing cost more than all the rest of reconcile.
   */
  public NftState canonical() {
    if (!dispatchChainExists(nft)) {
      return NftState.ABSENT;
    }
    return NftJson.parse(nft.canonical(NftBackend.desiredScript(desired.policies(), vmTaps.patterns())));
  }

  /**
   * Plans against the current state without the lock and without changing anything (doctor, --dry-run).
   * The canonical form is made while nft lists our table: two nft processes, one per core.
   */
  public ReconcilePlan plan() {
    CompletableFuture<NftState> canonical = CompletableFuture.supplyAsync(this::canonical);
    return plan(observe(nft), canonical);
  }

  /** {@link #plan()} with nft's form of the desired ruleset made already (doctor loads it for its kernel check). */
  public ReconcilePlan plan(NftState canonical) {
    return plan(observe(nft), CompletableFuture.completedFuture(canonical));
  }

  private ReconcilePlan plan(NftState observed, CompletableFuture<NftState> canonical) {
    NftState c;
    try {
      c = canonical.join();
    } catch (CompletionException e) {
      throw e.getCause() instanceof RuntimeException r ? r : e;
    }
    return NftBackend.reconcile(
        desired.policies(), desired.running(), desired.untouchable(), observed, c, store.records(), tapMac, vmTaps.patterns());
  }

  /**
   * Plans and applies under the host lock: one nft transaction, then the records. The canonical form
   * is made meanwhile (from before the lock until the plan needs it); whatever a hook call changes in
   * between is in what is observed under the lock, and the planner handles both orders.
   */
  public ReconcilePlan apply() {
    CompletableFuture<NftState> canonical = CompletableFuture.supplyAsync(this::canonical);
    try (StateStore.Lock l = store.lock()) {
      ReconcilePlan p = plan(observe(nft), canonical);
      Map<String, List<String>> want = inboundWanted(p.records());
      boolean present = listOurs(nft, "list", "chain", "bridge", InboundScript.TABLE, "deliver") != null
          && listOurs(nft, "list", "chain", "inet", InboundScript.TABLE, "ingress-decide") != null;
      InboundScript.Change in = InboundScript.reconcile(want, store::inbound, store.inboundTaps(), present);
      String script = InboundScript.append(p.script(), present ? InboundScript.ensure() : InboundScript.rebuild(), in);
      if (!script.isEmpty()) {
        nft.apply(script);
      }
      store.replaceAll(p.records());
      store.commitInbound(in.records());
      return p;
    }
  }

  /**
   * The inbound elements (delivery filter, security groups) every filtered tap must have: from its
   * NIC's policy, or, for a tap kept as it was (its domain's metadata is invalid), what it has now.
   */
  private Map<String, List<String>> inboundWanted(Map<String, Owner> records) {
    Map<String, List<String>> want = new TreeMap<>();
    for (Map.Entry<String, Owner> e : records.entrySet()) {
      List<String> els = null;
      for (DomainPolicy dp : desired.policies()) {
        if (!dp.uuid().equals(e.getValue().uuid())) {
          continue;
        }
        for (NicPolicy n : dp.nics()) {
          if (e.getKey().equals(n.tap()) && n.hasChain()) {
            els = InboundScript.elements(n);
          }
        }
      }
      want.put(e.getKey(), els != null ? els : store.inbound(e.getKey()));
    }
    return want;
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
