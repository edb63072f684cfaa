package ch.ungleich.uncloud.hook.nft;

import ch.ungleich.uncloud.hook.state.Owner;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Drift of the inbound tables (issue 17): what is installed ({@code nft -j -p list table ...
 * uncloud-inbound}) against what the running NICs demand, and the nft lines that repair it in
 * reconcile's one transaction. Pure.
 *
 * <p>The shared chains are compared rule by rule with {@link InboundScript#prelude()} as nft stores it
 * (loaded into a scratch namespace); only a chain that differs is rewritten, so the others' counters
 * keep counting. The sets are compared element by element with every tap's {@link
 * InboundScript#elements}: a missing element is added, one nobody demands (another tool's, or a gone
 * tap's) is deleted. A missing table, a base chain with another hook or a set of another type cannot
 * be repaired in place: both tables are rebuilt with every wanted element.
 */
public final class InboundDrift {
  /** The action of every {@link ReconcilePlan.Change} this makes. */
  public static final String ACTION = "inbound";

  private static final Pattern LINE = Pattern.compile("^(bridge|inet) " + Pattern.quote(InboundScript.TABLE) + " (\\S+) \\{ (.*) \\}$");
  private static final int SHOWN = 3;

  private InboundDrift() {}

  /**
   * @param lines nft lines to run after {@link InboundScript#ensure()} (or, when {@code rebuild}, the
   *     whole rebuild: run as they are); empty when nothing differs
   * @param changes one per tap whose elements differ, one per differing chain or table (tap null)
   * @param rebuild whether {@code lines} recreate both tables
   */
  public record Result(List<String> lines, List<ReconcilePlan.Change> changes, boolean rebuild) {
    public boolean isEmpty() {
      return lines.isEmpty();
    }

    /** The lines as they go into the transaction: after the sets (a rebuild brings its own). */
    public List<String> script() {
      if (lines.isEmpty()) {
        return List.of();
      }
      List<String> l = new ArrayList<>(rebuild ? List.of() : InboundScript.ensure());
      l.addAll(lines);
      return l;
    }
  }

  /**
   * @param want every tap that must have elements, to them (an empty list: none)
   * @param owners tap to owner, for the changes' domain and UUID (may lack a tap)
   * @param observed what is installed
   * @param canonical {@link InboundScript#prelude()} as nft stores it
   */
  public static Result compare(Map<String, List<String>> want, Map<String, Owner> owners, InboundState observed,
      InboundState canonical) {
    boolean needed = want.values().stream().anyMatch(l -> !l.isEmpty());
    List<String> reasons = new ArrayList<>();
    for (String f : List.of("bridge", "inet")) {
      if (!observed.tables().contains(f)) {
        reasons.add("table " + f + " " + InboundScript.TABLE + " was missing");
      }
    }
    if (!reasons.isEmpty() && !needed) {
      return new Result(List.of(), List.of(), false); // no NIC needs them yet: the first start adds them
    }
    if (reasons.isEmpty()) {
      for (Map.Entry<String, NftState.Chain> c : canonical.chains().entrySet()) {
        NftState.Chain have = observed.chains().get(c.getKey());
        if (have != null && !Objects.equals(have.hook(), c.getValue().hook())) {
          reasons.add("base chain " + c.getKey() + " is '" + have.hook() + "', not '" + c.getValue().hook() + "'");
        }
      }
      for (Map.Entry<String, InboundState.Elements> s : canonical.sets().entrySet()) {
        InboundState.Elements have = observed.sets().get(s.getKey());
        if (have != null && !have.type().equals(s.getValue().type())) {
          reasons.add("set " + s.getKey() + " is '" + have.type() + "', not '" + s.getValue().type() + "'");
        }
      }
    }
    if (!reasons.isEmpty()) {
      List<String> lines = new ArrayList<>(InboundScript.rebuild());
      List<String> all = new ArrayList<>();
      want.values().forEach(all::addAll);
      lines.addAll(InboundScript.add(all));
      return new Result(List.copyOf(lines), List.of(new ReconcilePlan.Change(ACTION, null, null, null,
          String.join("; ", reasons) + ": both inbound tables rebuilt with every NIC's elements")), true);
    }

    List<ReconcilePlan.Change> changes = new ArrayList<>();
    // chains
    List<String> rewrite = new ArrayList<>();
    for (Map.Entry<String, NftState.Chain> c : canonical.chains().entrySet()) {
      NftState.Chain have = observed.chains().get(c.getKey());
      String what = have == null ? "was missing" : differ(have, c.getValue());
      if (what != null) {
        rewrite.add(c.getKey());
        changes.add(new ReconcilePlan.Change(ACTION, null, null, null, "chain " + family(c.getKey()) + " " + InboundScript.TABLE
            + " " + name(c.getKey()) + " " + what));
      }
    }
    List<String> extraChains = unexpected("chain", observed.chains().keySet(), canonical.chains().keySet(), changes);
    for (String k : canonical.sets().keySet()) {
      if (!observed.sets().containsKey(k)) {
        changes.add(new ReconcilePlan.Change(ACTION, null, null, null, "set " + family(k) + " " + InboundScript.TABLE + " "
            + name(k) + " was missing"));
      }
    }
    List<String> extraSets = unexpected("set", observed.sets().keySet(), canonical.sets().keySet(), changes);

    // elements: set -> element -> the tap that demands it
    Map<String, Map<String, String>> wanted = new LinkedHashMap<>();
    for (Map.Entry<String, List<String>> e : new TreeMap<>(want).entrySet()) {
      for (String line : e.getValue()) {
        Matcher m = LINE.matcher(line);
        if (m.matches()) {
          wanted.computeIfAbsent(m.group(1) + " " + m.group(2), k -> new LinkedHashMap<>()).putIfAbsent(m.group(3), e.getKey());
        }
      }
    }
    Map<String, List<String>> missingByTap = new TreeMap<>();
    List<String> add = new ArrayList<>();
    for (Map.Entry<String, Map<String, String>> s : wanted.entrySet()) {
      InboundState.Elements have = observed.sets().get(s.getKey());
      for (Map.Entry<String, String> e : s.getValue().entrySet()) {
        if (have == null || !have.elements().contains(e.getKey())) {
          String el = s.getKey().replaceFirst(" ", " " + InboundScript.TABLE + " ") + " { " + e.getKey() + " }";
          add.add(el);
          missingByTap.computeIfAbsent(e.getValue(), k -> new ArrayList<>()).add(name(s.getKey()) + " { " + e.getKey() + " }");
        }
      }
    }
    List<String> delete = new ArrayList<>();
    List<String> unexpected = new ArrayList<>();
    for (Map.Entry<String, InboundState.Elements> s : observed.sets().entrySet()) {
      if (extraSets.contains(s.getKey())) {
        continue;
      }
      Map<String, String> w = wanted.getOrDefault(s.getKey(), Map.of());
      for (String e : s.getValue().elements()) {
        if (!w.containsKey(e)) {
          delete.add(s.getKey().replaceFirst(" ", " " + InboundScript.TABLE + " ") + " { " + e + " }");
          unexpected.add(family(s.getKey()) + " " + name(s.getKey()) + " { " + e + " }");
        }
      }
    }
    for (Map.Entry<String, List<String>> e : missingByTap.entrySet()) {
      Owner o = owners.get(e.getKey());
      changes.add(new ReconcilePlan.Change(ACTION, e.getKey(), o == null ? null : o.domain(), o == null ? null : o.uuid(),
          e.getValue().size() + " inbound set element" + (e.getValue().size() == 1 ? "" : "s") + " missing: " + shown(e.getValue())));
    }
    if (!unexpected.isEmpty()) {
      changes.add(new ReconcilePlan.Change(ACTION, null, null, null, unexpected.size() + " inbound set element"
          + (unexpected.size() == 1 ? " no running NIC demands (reconcile deletes it): " : "s no running NIC demands (reconcile deletes"
          + " them): ") + shown(unexpected)));
    }

    List<String> lines = new ArrayList<>();
    if (!rewrite.isEmpty()) {
      List<String> prelude = InboundScript.prelude();
      // every chain first (a jump may only name a chain that exists), then the differing ones rewritten
      for (String l : prelude) {
        if (l.startsWith("add chain ")) {
          lines.add(l);
        }
      }
      for (String k : rewrite) {
        String table = family(k) + " " + InboundScript.TABLE + " ";
        lines.add("flush chain " + table + name(k));
        for (String l : prelude) {
          if (l.startsWith("add rule " + table + name(k) + " ")) {
            lines.add(l);
          }
        }
      }
    }
    lines.addAll(InboundScript.delete(delete));
    lines.addAll(InboundScript.add(add));
    for (String k : extraChains) {
      lines.add("flush chain " + family(k) + " " + InboundScript.TABLE + " " + name(k));
    }
    for (String k : extraChains) {
      lines.add("delete chain " + family(k) + " " + InboundScript.TABLE + " " + name(k));
    }
    for (String k : extraSets) {
      lines.add("delete set " + family(k) + " " + InboundScript.TABLE + " " + name(k));
    }
    return new Result(List.copyOf(lines), List.copyOf(changes), false);
  }

  /** Null when the rules are the same; else what differs, by the rules' comments. */
  private static String differ(NftState.Chain have, NftState.Chain want) {
    if (have.keys().equals(want.keys())) {
      return null;
    }
    Set<String> missing = new LinkedHashSet<>();
    for (NftState.Rule r : want.rules()) {
      if (!have.keys().contains(r.key())) {
        missing.add("'" + r.comment() + "'");
      }
    }
    Set<String> extra = new LinkedHashSet<>();
    for (NftState.Rule r : have.rules()) {
      if (!want.keys().contains(r.key())) {
        extra.add("'" + (r.comment() == null ? "(no comment)" : r.comment()) + "'");
      }
    }
    StringBuilder b = new StringBuilder("rules differ (" + have.rules().size() + " installed, " + want.rules().size() + " expected)");
    if (!missing.isEmpty()) {
      b.append("; missing: ").append(String.join(", ", missing));
    }
    if (!extra.isEmpty()) {
      b.append("; unexpected: ").append(String.join(", ", extra));
    }
    if (missing.isEmpty() && extra.isEmpty()) {
      b.append("; same rules in another order");
    }
    return b.toString();
  }

  private static String shown(List<String> l) {
    return String.join(", ", l.subList(0, Math.min(SHOWN, l.size()))) + (l.size() > SHOWN ? " and " + (l.size() - SHOWN) + " more" : "");
  }

  /** The keys {@code observed} has and {@code canonical} has not, each also as a change (reconcile deletes them). */
  private static List<String> unexpected(String kind, Set<String> observed, Set<String> canonical,
      List<ReconcilePlan.Change> changes) {
    List<String> extra = new ArrayList<>();
    for (String k : observed) {
      if (!canonical.contains(k)) {
        extra.add(k);
        changes.add(new ReconcilePlan.Change(ACTION, null, null, null, "unexpected " + kind + " " + family(k) + " "
            + InboundScript.TABLE + " " + name(k) + " (reconcile deletes it)"));
      }
    }
    return extra;
  }

  private static String family(String key) {
    return key.substring(0, key.indexOf(' '));
  }

  private static String name(String key) {
    return key.substring(key.indexOf(' ') + 1);
  }
}
