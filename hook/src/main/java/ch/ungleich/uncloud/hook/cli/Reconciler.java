package ch.ungleich.uncloud.hook.cli;

import ch.ungleich.uncloud.hook.host.LinuxHost;
import ch.ungleich.uncloud.hook.nft.NftBackend;
import ch.ungleich.uncloud.hook.nft.NftJson;
import ch.ungleich.uncloud.hook.nft.NftRunner;
import ch.ungleich.uncloud.hook.nft.NftState;
import ch.ungleich.uncloud.hook.nft.ReconcilePlan;
import ch.ungleich.uncloud.hook.state.StateStore;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;

/**
 * The one place {@code reconcile} (and doctor's drift check) plan and apply: libvirt has been read
 * already (never under the host lock: a hook call holds libvirt's domain lock while it waits for
 * ours), then under the lock nft and the records are read, planned against, and changed.
 */
final class Reconciler {
  private final Inventory inventory;
  private final NftRunner nft;
  private final StateStore store;
  private final LinuxHost host;

  Reconciler(Inventory inventory, NftRunner nft, StateStore store, LinuxHost host) {
    this.inventory = inventory;
    this.nft = nft;
    this.store = store;
    this.host = host;
  }

  /**
   * The desired ruleset as nft stores it: loaded into a scratch network namespace, listed there. Not
   * when our dispatch chain is missing (host boot, {@code nft flush ruleset}; {@code nft list chain}
   * costs the same at any size): then everything is installed and nothing compared, and at 1000
   * ports the scratch load and its listing cost more than all the rest of reconcile.
   */
  NftState canonical() {
    if (!Inventory.dispatchChainExists(nft)) {
      return NftState.ABSENT;
    }
    return NftJson.parse(nft.canonical(NftBackend.desiredScript(inventory.policies())));
  }

  /**
   * Plans against the current state without the lock and without changing anything (doctor, --dry-run).
   * The canonical form is made while nft lists our table: two nft processes, one per core.
   */
  ReconcilePlan plan() {
    CompletableFuture<NftState> canonical = CompletableFuture.supplyAsync(this::canonical);
    return plan(Inventory.observe(nft), canonical);
  }

  /** {@link #plan()} with nft's form of the desired ruleset made already (doctor loads it for its kernel check). */
  ReconcilePlan plan(NftState canonical) {
    return plan(Inventory.observe(nft), CompletableFuture.completedFuture(canonical));
  }

  private ReconcilePlan plan(NftState observed, CompletableFuture<NftState> canonical) {
    NftState c;
    try {
      c = canonical.join();
    } catch (CompletionException e) {
      throw e.getCause() instanceof RuntimeException r ? r : e;
    }
    return NftBackend.reconcile(
        inventory.policies(),
        inventory.runningUuids(),
        inventory.untouchable(),
        observed,
        c,
        store.records(),
        host::linkMac);
  }

  /**
   * Plans and applies under the host lock: one nft transaction, then the records. The canonical form
   * is made meanwhile (from before the lock until the plan needs it); whatever a hook call changes in
   * between is in what is observed under the lock, and the planner handles both orders.
   */
  ReconcilePlan apply() {
    CompletableFuture<NftState> canonical = CompletableFuture.supplyAsync(this::canonical);
    try (StateStore.Lock l = store.lock()) {
      ReconcilePlan p = plan(Inventory.observe(nft), canonical);
      if (!p.script().isEmpty()) {
        nft.apply(p.script());
      }
      store.replaceAll(p.records());
      return p;
    }
  }
}
