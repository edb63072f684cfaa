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
   * The desired ruleset as nft stores it (loaded into a scratch network namespace, listed there), but
   * only the chains that exist in {@code observed}: only those are compared, the missing ones are
   * installed. Nothing to load when our table is gone (host boot, {@code nft flush ruleset}).
   */
  NftState canonical(NftState observed) {
    String script = NftBackend.canonicalScript(inventory.policies(), observed);
    return script == null ? NftState.ABSENT : NftJson.parse(nft.canonical(script));
  }

  /** Plans against the current state without the lock and without changing anything (doctor, --dry-run). */
  ReconcilePlan plan() {
    return plan(Inventory.observe(nft));
  }

  private ReconcilePlan plan(NftState observed) {
    return NftBackend.reconcile(
        inventory.policies(),
        inventory.runningUuids(),
        inventory.untouchable(),
        observed,
        canonical(observed),
        store.records(),
        host::linkMac);
  }

  /** Plans and applies under the host lock: one nft transaction, then the records. */
  ReconcilePlan apply() {
    try (StateStore.Lock l = store.lock()) {
      ReconcilePlan p = plan(Inventory.observe(nft));
      if (!p.script().isEmpty()) {
        nft.apply(p.script());
      }
      store.replaceAll(p.records());
      return p;
    }
  }
}
