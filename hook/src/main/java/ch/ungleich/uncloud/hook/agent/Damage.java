package ch.ungleich.uncloud.hook.agent;

import java.util.Set;
import java.util.TreeSet;

/**
 * What foreign transactions took from our tables, as {@link Agent#damage} reads their notifications.
 *
 * @param table {@code table bridge uncloud} (or its map) is gone: everything is restored
 * @param dispatch the dispatch chain lost rules (or is gone): the prelude is rewritten
 * @param taps taps whose chain or map element is gone, or whose chain lost rules
 * @param inbound something of the inbound tables is gone: they are put back from the records
 * @param unknown notifications were lost: compare with the kernel (a full reconcile)
 */
record Damage(boolean table, boolean dispatch, Set<String> taps, boolean inbound, boolean unknown) {
  static final Damage NONE = new Damage(false, false, Set.of(), false, false);
  static final Damage UNKNOWN = new Damage(false, false, Set.of(), false, true);

  Damage {
    taps = Set.copyOf(taps);
  }

  boolean none() {
    return !table && !dispatch && taps.isEmpty() && !inbound && !unknown;
  }

  Damage merge(Damage o) {
    Set<String> t = new TreeSet<>(taps);
    t.addAll(o.taps);
    return new Damage(table || o.table, dispatch || o.dispatch, t, inbound || o.inbound, unknown || o.unknown);
  }
}
