package ch.ungleich.uncloud.hook.nft;

import ch.ungleich.uncloud.hook.state.Owner;
import java.util.List;
import java.util.Map;

/**
 * What {@code reconcile} changes on a host: one nft transaction and the complete set of ownership
 * records that is true once it has been applied.
 *
 * @param script the nft transaction; empty when the rules already are what libvirt's domains demand
 * @param changes what the script and the record rewrite change, one entry per tap (or table)
 * @param notes what was deliberately left alone, and why (not a change)
 * @param records every ownership record after the change: tap to owner
 */
public record ReconcilePlan(String script, List<Change> changes, List<Change> notes, Map<String, Owner> records) {

  /**
   * One change or note.
   *
   * @param action {@code rebuild} (table recreated), {@code prelude} (table, map or dispatch chain
   *     restored), {@code install} (chain was missing), {@code update} (chain's rules differ),
   *     {@code element} (map element missing or wrong), {@code remove} (stale chain or element),
   *     {@code record} (ownership record rewritten or removed); notes: {@code keep}, {@code skip}
   * @param tap the tap, null for table-wide entries
   * @param domain the domain's name, null when unknown
   * @param uuid the domain's UUID, null when unknown
   * @param detail what differs, for humans
   */
  public record Change(String action, String tap, String domain, String uuid, String detail) {
    @Override
    public String toString() {
      return action + " " + (tap == null ? "table" : tap) + (domain == null ? "" : " (" + domain + ")") + ": " + detail;
    }
  }

  /** True when neither nft nor the records change. */
  public boolean isEmpty() {
    return script.isEmpty() && changes.isEmpty();
  }
}
