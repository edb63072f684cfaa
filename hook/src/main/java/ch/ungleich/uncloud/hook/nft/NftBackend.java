package ch.ungleich.uncloud.hook.nft;

import ch.ungleich.uncloud.hook.model.DomainPolicy;
import ch.ungleich.uncloud.hook.model.NicPolicy;
import ch.ungleich.uncloud.hook.model.VmTaps;
import ch.ungleich.uncloud.hook.state.Owner;
import ch.ungleich.uncloud.hook.state.Plan;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.function.Function;

/**
 * Plans nft changes for one domain event. Pure: the ownership records come in as a function, the plan
 * goes out; {@code HookMain} applies it. An event touches only the domain's own taps.
 */
public final class NftBackend {
  /** How a reconcile plan's prelude change starts when only the vm_taps guard is missing. */
  public static final String GUARD_MISSING = "vm_taps guard was missing";

  private NftBackend() {}

  /** {@link #start(DomainPolicy, List, Function, List)} without the vm_taps guard. */
  public static Plan start(DomainPolicy p, List<String> previousTaps, Function<String, Owner> ownerOf) {
    return start(p, previousTaps, ownerOf, List.of());
  }

  /**
   * Installs the domain's rules (start, reconnect). Taps the domain owned before but no longer has are
   * released; a bridged NIC that is not filtered (trusted, {@code unlisted = allow}) gets a chain that
   * accepts, replacing any rules a previous user of its tap left.
   *
   * @param guard the vm_taps patterns the dispatch chain gets ({@link NftGuard} decides which are safe)
   */
  public static Plan start(
      DomainPolicy p, List<String> previousTaps, Function<String, Owner> ownerOf, List<String> guard) {
    NftScript s = new NftScript().prelude(guard);
    Map<String, Owner> claim = new LinkedHashMap<>();
    List<String> release = new ArrayList<>();
    Set<String> current = new LinkedHashSet<>();
    boolean touched = false;
    for (NicPolicy nic : p.nics()) {
      if (!nic.filterable() || nic.tap() == null) {
        continue;
      }
      touched = true;
      current.add(nic.tap());
      Owner o = new Owner(p.uuid(), nic.mac().text(), p.name());
      s.install(nic, o.comment());
      claim.put(nic.tap(), o);
    }
    for (String tap : previousTaps) {
      Owner o = ownerOf.apply(tap);
      if (!current.contains(tap) && o != null && o.uuid().equals(p.uuid())) {
        s.remove(tap);
        release.add(tap);
        touched = true;
      }
    }
    return new Plan(touched ? s.render() : "", claim, release, List.copyOf(claim.keySet()));
  }

  /**
   * Removes the domain's rules (stopped, release): every tap it owns, unless the tap has been taken
   * over by another domain since (libvirt reuses {@code vnetN} names), in which case that domain's rules
   * stay untouched. Nothing to remove gives an empty script.
   */
  public static Plan stop(String uuid, List<String> previousTaps, Function<String, Owner> ownerOf) {
    NftScript s = new NftScript();
    List<String> release = new ArrayList<>();
    for (String tap : previousTaps) {
      Owner o = ownerOf.apply(tap);
      if (o != null && o.uuid().equals(uuid)) {
        if (s.isEmpty()) {
          s.ensure(); // removing never changes the dispatch rule or the guard
        }
        s.remove(tap);
        release.add(tap);
      }
    }
    return new Plan(s.render(), Map.of(), release, null);
  }

  /**
   * The whole ruleset the given running domains demand: table, map, dispatch chain and one chain per
   * filtered NIC. {@code reconcile} loads it into a scratch namespace ({@link NftRunner#canonical}) to
   * learn how nft stores it, and never applies it as such.
   */
  public static String desiredScript(List<DomainPolicy> policies, List<String> guard) {
    NftScript s = new NftScript().prelude(guard);
    for (DomainPolicy p : policies) {
      for (NicPolicy nic : p.nics()) {
        if (nic.hasChain()) {
          s.install(nic, owner(p, nic).comment());
        }
      }
    }
    return s.render();
  }

  /**
   * Plans {@code reconcile}: makes our table what the running domains demand, with as few changes as
   * possible (a chain whose rules are right keeps its counters), and removes what is stale. Planning
   * against the state the plan produces gives an empty plan.
   *
   * <p>libvirt is read before the host lock is taken (a hook call holds libvirt's domain lock while
   * it waits for ours), so a domain may start or stop in between. {@code tapMac} tells what is true
   * now: a desired NIC whose tap is gone, or whose libvirt tap now carries another NIC's MAC, is
   * skipped; a chain whose tap is up with its owner's MAC, owned by a domain libvirt did not list, is
   * kept (the domain started after libvirt was read; its own hook call installed it).
   *
   * @param policies the running domains whose metadata is valid
   * @param running UUIDs of every running domain libvirt listed, valid or not
   * @param untouchable taps of running domains whose metadata is invalid: their rules stay as they are
   * @param observed our table now
   * @param canonical {@link #desiredScript} of {@code policies} as nft stores it, or {@link
   *     NftState#ABSENT} when there was no dispatch chain to compare with as reconcile started (host boot,
   *     {@code nft flush ruleset}): then everything is installed, nothing compared (a chain a hook call
   *     installed meanwhile is installed again: same rules, counters from zero)
   * @param records the ownership records now
   * @param tapMac the host-side MAC of an interface (libvirt gives a tap the guest MAC with the first
   *     octet fe, or fa), null when there is no such interface
   * @param guard the vm_taps patterns: reconcile knows every running domain, so their elements and the
   *     guard go in together ({@code canonical} must have been made with the same patterns)
   */
  public static ReconcilePlan reconcile(
      List<DomainPolicy> policies,
      Set<String> running,
      Set<String> untouchable,
      NftState observed,
      NftState canonical,
      Map<String, Owner> records,
      Function<String, String> tapMac,
      List<String> guard) {
    List<ReconcilePlan.Change> changes = new ArrayList<>();
    List<ReconcilePlan.Change> notes = new ArrayList<>();

    // the ports that must be filtered, by tap
    Map<String, NicPolicy> nics = new LinkedHashMap<>();
    Map<String, Owner> owners = new LinkedHashMap<>();
    for (DomainPolicy p : policies) {
      for (NicPolicy nic : p.nics()) {
        if (!nic.hasChain()) {
          continue;
        }
        Owner o = owner(p, nic);
        String hostMac = tapMac.apply(nic.tap());
        if (hostMac == null) {
          notes.add(change("skip", nic.tap(), o, "the tap is gone since libvirt was read (the hook removes its rules)"));
          continue;
        }
        if (isLibvirtTap(hostMac) && !sameNic(hostMac, nic.mac().text())) {
          notes.add(change("skip", nic.tap(), o, "the tap now carries MAC " + hostMac + ", another NIC's"));
          continue;
        }
        if (nics.containsKey(nic.tap())) {
          notes.add(change("skip", nic.tap(), o, "also claimed by " + owners.get(nic.tap()).domain()));
          continue;
        }
        nics.put(nic.tap(), nic);
        owners.put(nic.tap(), o);
      }
    }

    NftScript s = new NftScript();
    NftState.Chain wantBase = canonical.chain(NftScript.BASE_CHAIN);
    NftState.Chain haveBase = observed.chain(NftScript.BASE_CHAIN);
    String wantMap = canonical.ports() == null ? null : canonical.ports().type();
    boolean compare = canonical.exists();
    boolean rebuild =
        observed.exists() && compare
            && (observed.ports() != null && !observed.ports().type().equals(wantMap)
                || haveBase != null && !Objects.equals(haveBase.hook(), wantBase.hook()));
    if (rebuild) {
      s.dropTable().prelude(guard);
      changes.add(
          new ReconcilePlan.Change(
              "rebuild", null, null, null,
              "map type '" + (observed.ports() == null ? "none" : observed.ports().type()) + "' or dispatch chain '"
                  + (haveBase == null ? "none" : haveBase.hook()) + "' cannot be changed in place; table recreated"));
      observed = NftState.ABSENT;
    } else if (!observed.exists()) {
      s.prelude(guard);
      changes.add(new ReconcilePlan.Change("prelude", null, null, null, "table " + NftScript.TABLE + " was missing"));
    } else if (!compare || observed.ports() == null || haveBase == null || !haveBase.keys().equals(wantBase.keys())) {
      s.prelude(guard);
      String what = !compare ? "table " + NftScript.TABLE + " appeared while reconcile ran"
          : observed.ports() == null ? "map " + NftScript.MAP + " was missing"
          : haveBase == null ? "chain " + NftScript.BASE_CHAIN + " was missing"
          : guardOnlyMissing(haveBase, wantBase) ? GUARD_MISSING + ": added with every running VM's elements"
          : "dispatch rule of " + NftScript.BASE_CHAIN + " differs";
      changes.add(new ReconcilePlan.Change("prelude", null, null, null, what));
    }

    for (Map.Entry<String, NicPolicy> e : nics.entrySet()) {
      String tap = e.getKey();
      Owner o = owners.get(tap);
      String chain = NftScript.chain(tap);
      NftState.Chain have = observed.chain(chain);
      NftState.Chain want = canonical.chain(chain);
      if (have == null) {
        s.install(e.getValue(), o.comment());
        changes.add(change("install", tap, o, "chain " + chain + " was missing"));
      } else if (!compare) {
        s.install(e.getValue(), o.comment());
        changes.add(change("update", tap, o, "chain " + chain + " appeared while reconcile ran: installed again"));
      } else if (want == null) {
        throw new IllegalArgumentException("canonical state lacks " + chain + ": not made from these policies");
      } else if (!have.keys().equals(want.keys()) || !Objects.equals(have.hook(), want.hook())) {
        s.install(e.getValue(), o.comment());
        changes.add(change("update", tap, o, describe(have, want)));
      } else if (!Objects.equals(observed.element(tap), canonical.element(tap))) {
        s.relabel(tap, o.comment());
        NftState.Element el = observed.element(tap);
        changes.add(
            change(
                "element", tap, o,
                el == null ? "map element was missing" : "map element was '" + el.verdict() + "' labelled '" + el.comment() + "'"));
      }
    }

    for (String tap : new TreeSet<>(untouchable)) {
      if (observed.element(tap) == null && tapMac.apply(tap) != null
          && guard.stream().anyMatch(g -> VmTaps.matches(g, tap))) {
        notes.add(new ReconcilePlan.Change("keep", tap, null, null, "its domain's metadata is invalid and it has no"
            + " rules: the vm_taps guard drops its frames until the metadata is fixed"));
      }
    }

    // stale: elements and port chains of taps that no running domain filters
    Map<String, Owner> keep = new TreeMap<>();
    Set<String> candidates = new TreeSet<>();
    if (observed.ports() != null) {
      candidates.addAll(observed.ports().elements().keySet());
    }
    for (String name : observed.chains().keySet()) {
      if (name.startsWith("port-")) {
        candidates.add(name.substring("port-".length()));
      } else if (!name.equals(NftScript.BASE_CHAIN)) {
        notes.add(new ReconcilePlan.Change("keep", null, null, null, "chain " + name + " is not ours; left alone"));
      }
    }
    for (String other : observed.others()) {
      notes.add(new ReconcilePlan.Change("keep", null, null, null, other + " is not ours; left alone"));
    }
    candidates.removeAll(nics.keySet());
    for (String tap : candidates) {
      NftState.Element el = observed.element(tap);
      Owner o = el != null && el.comment() != null ? fromComment(el.comment()) : null;
      if (o == null) {
        o = records.get(tap);
      }
      String hostMac = tapMac.apply(tap);
      if (untouchable.contains(tap)) {
        notes.add(change("keep", tap, o, "its domain's metadata is invalid; rules left as they were"));
        keepRecord(keep, tap, o, records);
        continue;
      }
      if (hostMac != null && o != null && !running.contains(o.uuid()) && sameNic(hostMac, o.mac())) {
        notes.add(change("keep", tap, o, "tap is up with the owner's MAC and the domain started after libvirt was read"));
        keepRecord(keep, tap, o, records);
        continue;
      }
      if (!validTap(tap)) {
        notes.add(change("keep", tap, o, "chain port-" + tap + " is not ours (not a valid interface name); left alone"));
        continue;
      }
      s.remove(tap);
      String why;
      if (hostMac == null) {
        why = "interface " + tap + " no longer exists";
      } else if (o != null && running.contains(o.uuid())) {
        why = "domain " + o.domain() + " no longer filters " + tap;
      } else {
        why = tap + " is no longer a filtered NIC of a running domain";
      }
      changes.add(change("remove", tap, o, why + (el == null ? " (chain without map element)" : "")));
    }

    // ownership records: exactly the filtered taps, plus what was kept as it was
    Map<String, Owner> after = new TreeMap<>(owners);
    after.putAll(keep);
    for (Map.Entry<String, Owner> e : after.entrySet()) {
      Owner now = records.get(e.getKey());
      if (!e.getValue().equals(now)) {
        changes.add(
            change("record", e.getKey(), e.getValue(), now == null ? "ownership record was missing" : "ownership record said " + now.domain() + " " + now.uuid() + " " + now.mac()));
      }
    }
    for (Map.Entry<String, Owner> e : new TreeMap<>(records).entrySet()) {
      if (!after.containsKey(e.getKey())) {
        changes.add(change("record", e.getKey(), e.getValue(), "stale ownership record removed"));
      }
    }
    String script = s.isEmpty() ? "" : s.render();
    return new ReconcilePlan(script, List.copyOf(changes), List.copyOf(notes), Map.copyOf(after));
  }

  /** Whether the dispatch chain has everything it should but the guard rules at its end. */
  private static boolean guardOnlyMissing(NftState.Chain have, NftState.Chain want) {
    List<String> h = have.keys();
    List<String> w = want.keys();
    return h.size() < w.size() && w.subList(0, h.size()).equals(h);
  }

  private static void keepRecord(Map<String, Owner> keep, String tap, Owner fromNft, Map<String, Owner> records) {
    Owner o = records.containsKey(tap) ? records.get(tap) : fromNft;
    if (o != null) {
      keep.put(tap, o);
    }
  }

  /** The owner of a domain's NIC. */
  public static Owner owner(DomainPolicy p, NicPolicy nic) {
    return new Owner(p.uuid(), nic.mac().text(), p.name());
  }

  /** The inverse of {@link Owner#comment()}: {@code <domain> <uuid> <mac>}; null if it is not one. */
  public static Owner fromComment(String comment) {
    String[] f = comment.strip().split(" ");
    if (f.length < 3 || !f[f.length - 1].matches("[0-9a-f]{2}(:[0-9a-f]{2}){5}")
        || !f[f.length - 2].matches("[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}")) {
      return null;
    }
    String domain = String.join(" ", java.util.Arrays.copyOf(f, f.length - 2));
    return new Owner(f[f.length - 2], f[f.length - 1], domain);
  }

  /** Whether a host-side MAC is one libvirt gives its taps: the guest's MAC with first octet fe (or fa). */
  public static boolean isLibvirtTap(String hostMac) {
    String m = hostMac.toLowerCase(java.util.Locale.ROOT);
    return m.startsWith("fe:") || m.startsWith("fa:");
  }

  /** Whether a tap's host-side MAC belongs to the guest NIC with MAC {@code nicMac} (all but the first octet). */
  public static boolean sameNic(String hostMac, String nicMac) {
    return hostMac.length() == 17 && nicMac.length() == 17
        && hostMac.substring(3).equalsIgnoreCase(nicMac.substring(3));
  }

  private static boolean validTap(String tap) {
    try {
      NftScript.chain(tap);
      return true;
    } catch (IllegalArgumentException e) {
      return false;
    }
  }

  private static ReconcilePlan.Change change(String action, String tap, Owner o, String detail) {
    return new ReconcilePlan.Change(action, tap, o == null ? null : o.domain(), o == null ? null : o.uuid(), detail);
  }

  /** Which rules (by comment) are missing, changed or unexpected. */
  private static String describe(NftState.Chain have, NftState.Chain want) {
    if (!Objects.equals(have.hook(), want.hook())) {
      return "chain is a base chain (" + have.hook() + "), must be a regular chain";
    }
    List<String> missing = new ArrayList<>();
    for (NftState.Rule r : want.rules()) {
      if (!have.keys().contains(r.key())) {
        missing.add(label(r));
      }
    }
    List<String> extra = new ArrayList<>();
    for (NftState.Rule r : have.rules()) {
      if (!want.keys().contains(r.key())) {
        extra.add(label(r));
      }
    }
    List<String> changed = new ArrayList<>();
    for (String m : List.copyOf(missing)) {
      if (extra.remove(m)) {
        missing.remove(m);
        changed.add(m);
      }
    }
    StringBuilder b = new StringBuilder("rules differ from the metadata (" + have.rules().size() + " installed, "
        + want.rules().size() + " expected)");
    if (!missing.isEmpty()) {
      b.append("; missing: ").append(String.join(", ", missing));
    }
    if (!changed.isEmpty()) {
      b.append("; changed: ").append(String.join(", ", changed));
    }
    if (!extra.isEmpty()) {
      b.append("; unexpected: ").append(String.join(", ", extra));
    }
    if (missing.isEmpty() && extra.isEmpty() && changed.isEmpty()) {
      b.append("; same rules in another order");
    }
    return b.toString();
  }

  private static String label(NftState.Rule r) {
    return "'" + (r.comment() == null ? "(no comment)" : r.comment()) + "'";
  }
}
