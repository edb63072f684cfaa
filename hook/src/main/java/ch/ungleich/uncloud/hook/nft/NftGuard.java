package ch.ungleich.uncloud.hook.nft;

import ch.ungleich.uncloud.hook.model.VmTaps;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Supplier;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * When a call that sees only some domains (one hook call, one agent action, a hook batch) may put the
 * vm_taps guard into the dispatch chain. Pure.
 *
 * <p>A guard pattern that is there already stays: while it is there every VM tap that has rules has an
 * element, and each call gives its own NICs theirs in the same transaction. A pattern that is not there
 * yet (first install, an upgrade from a version without the guard, after {@code nft flush ruleset}, a
 * new pattern in the config) is added only when no interface it matches would lose its traffic: each one
 * is a tap of this call, or has an element already. Otherwise it is withheld, and the call says so: such
 * a port is a running VM's NIC whose rules this call cannot know (an unfiltered NIC of an older version,
 * a VM started before the hook was installed, a VM whose rules were flushed), and dropping it would cut
 * that VM off. {@code reconcile} (and the agent's resync) know every running domain and add the guard
 * together with their elements in one transaction.
 */
public final class NftGuard {
  private NftGuard() {}

  /**
   * The decision.
   *
   * @param patterns the patterns to render (the configured ones that are safe)
   * @param withheld configured patterns left out, each with the interfaces that would have been cut off
   */
  public record Decision(List<String> patterns, Map<String, List<String>> withheld) {
    /** One log line when something was withheld, else null. */
    public String note() {
      if (withheld.isEmpty()) {
        return null;
      }
      List<String> parts = new ArrayList<>();
      withheld.forEach((p, ifs) -> parts.add("'" + p + "' (" + String.join(", ", ifs) + ")"));
      return "vm_taps guard " + String.join(", ", parts) + " not added: these ports have no rules and may be running"
          + " VMs' NICs this call does not know; 'uncloud-hook reconcile' adds the guard with their rules";
    }
  }

  /**
   * Decides which of the configured patterns the dispatch chain gets.
   *
   * @param wanted the configured patterns ({@code vm_taps})
   * @param installed the patterns the dispatch chain has now; empty when it has none or does not exist
   * @param links the host's interface names now; empty when they cannot be read (every host has
   *     {@code lo}): then no new pattern is added
   * @param covered taps that have an element once this transaction is applied
   * @param released taps whose element this transaction removes
   * @param elements the map's elements now; asked only when a new pattern matches an interface that is
   *     not {@code covered} (one listing of the map, only on the way to the guard)
   */
  public static Decision decide(
      List<String> wanted,
      List<String> installed,
      Collection<String> links,
      Set<String> covered,
      Set<String> released,
      Supplier<Set<String>> elements) {
    List<String> out = new ArrayList<>();
    Map<String, List<String>> withheld = new LinkedHashMap<>();
    Set<String> have = null;
    for (String p : wanted) {
      if (installed.contains(p)) {
        out.add(p);
        continue;
      }
      List<String> cut = new ArrayList<>();
      if (links.isEmpty()) {
        withheld.put(p, List.of("the host's interfaces could not be read"));
        continue;
      }
      for (String l : links) {
        if (VmTaps.matches(p, l) && !covered.contains(l)) {
          cut.add(l);
        }
      }
      if (!cut.isEmpty()) {
        if (have == null) {
          have = elements.get();
        }
        Set<String> h = have;
        cut.removeIf(l -> h.contains(l) && !released.contains(l));
      }
      if (cut.isEmpty()) {
        out.add(p);
      } else {
        withheld.put(p, cut.stream().sorted().toList());
      }
    }
    return new Decision(List.copyOf(out), Map.copyOf(withheld));
  }

  private static final Pattern GUARD_RULE =
      Pattern.compile("(?m)^\\s*iifname \"([A-Za-z0-9_.:*-]+)\" counter packets \\d+ bytes \\d+ drop\\b");
  private static final Pattern ELEMENT =
      Pattern.compile("\"([A-Za-z0-9_.:-]+)\"(?: comment \"[^\"]*\")? : (?:jump|goto|accept|drop) ");

  /** The guard patterns in {@code nft list chain bridge uncloud filter-prerouting}'s text, in order. */
  public static List<String> installed(String chainListing) {
    List<String> out = new ArrayList<>();
    Matcher m = GUARD_RULE.matcher(chainListing);
    while (m.find()) {
      out.add(m.group(1));
    }
    return out;
  }

  /** The element keys in {@code nft list map bridge uncloud ports}'s text. */
  public static Set<String> elements(String mapListing) {
    Set<String> out = new LinkedHashSet<>();
    Matcher m = ELEMENT.matcher(mapListing.replace("}", " }").replace(",", " ,"));
    while (m.find()) {
      out.add(m.group(1));
    }
    return out;
  }
}
