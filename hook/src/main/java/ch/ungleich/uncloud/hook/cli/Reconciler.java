package ch.ungleich.uncloud.hook.cli;

import ch.ungleich.uncloud.hook.host.LinuxHost;
import ch.ungleich.uncloud.hook.nft.NftBackend;
import ch.ungleich.uncloud.hook.nft.NftJson;
import ch.ungleich.uncloud.hook.nft.NftRunner;
import ch.ungleich.uncloud.hook.nft.NftState;
import ch.ungleich.uncloud.hook.nft.ReconcilePlan;
import ch.ungleich.uncloud.hook.state.StateStore;

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

  /** Plans against the current state without the lock and without changing anything (doctor, --dry-run). */
  ReconcilePlan plan() {
    return plan(canonical());
  }

  private ReconcilePlan plan(NftState canonical) {
    return NftBackend.reconcile(
        inventory.policies(),
        inventory.runningUuids(),
        inventory.untouchable(),
        Inventory.observe(nft),
        canonical,
        store.records(),
        host::linkMac);
  }

  /** Plans and applies under the host lock (the canonical form is made before): one nft transaction, then the records. */
  ReconcilePlan apply() {
    NftState canonical = canonical();
    try (StateStore.Lock l = store.lock()) {
      ReconcilePlan p = plan(canonical);
      if (!p.script().isEmpty()) {
        nft.apply(p.script());
      }
      store.replaceAll(p.records());
      return p;
    }
  }
}
