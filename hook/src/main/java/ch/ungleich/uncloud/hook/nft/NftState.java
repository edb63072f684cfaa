package ch.ungleich.uncloud.hook.nft;

import java.util.List;
import java.util.Map;

/**
 * Our table as nft holds it ({@code nft -j list table bridge uncloud}), reduced to what reconcile,
 * status and doctor compare. Pure data; {@link NftJson} builds it.
 *
 * <p>Rules are compared by {@link Rule#key}: nft's own JSON of the rule's expressions with counter
 * values zeroed, plus its comment. Our scripts are never compared as text with nft's listing (nft
 * rewrites expressions when it stores them, e.g. drops the implied {@code ether type}); instead the
 * desired script is loaded into a scratch network namespace and listed there, so both sides are in
 * nft's own form ({@link NftRunner#canonical}).
 *
 * @param exists whether the table exists at all
 * @param chains every chain of the table by name, in nft's order
 * @param ports our verdict map, null if absent
 * @param others names of other objects in the table (sets, maps, flowtables ...) that are not ours
 */
public record NftState(boolean exists, Map<String, Chain> chains, PortsMap ports, List<String> others) {

  /** No table. */
  public static final NftState ABSENT = new NftState(false, Map.of(), null, List.of());

  /**
   * A chain.
   *
   * @param hook for a base chain {@code "filter prerouting -300 accept"} (type, hook, priority,
   *     policy), null for a regular chain
   */
  public record Chain(String name, String hook, List<Rule> rules) {
    /** Dropped packets and bytes: the sum of the rules that count and drop. */
    public Counter dropped() {
      long p = 0;
      long b = 0;
      for (Rule r : rules) {
        if (r.countsDrops()) {
          p += r.packets();
          b += r.bytes();
        }
      }
      return new Counter(p, b);
    }

    public List<String> keys() {
      return rules.stream().map(Rule::key).toList();
    }
  }

  /**
   * A rule.
   *
   * @param key what identifies the rule's meaning: expressions (counters zeroed) and comment
   * @param countsDrops whether it has a counter and ends in drop
   */
  public record Rule(String key, String comment, boolean countsDrops, long packets, long bytes) {}

  /** Packets and bytes. */
  public record Counter(long packets, long bytes) {}

  /**
   * The {@code ports} map.
   *
   * @param type e.g. {@code "ifname : verdict"}
   */
  public record PortsMap(String type, Map<String, Element> elements) {}

  /**
   * One map element.
   *
   * @param verdict e.g. {@code "jump port-vnet0"}
   * @param comment the owner label, or null
   */
  public record Element(String tap, String verdict, String comment) {}

  public Chain chain(String name) {
    return chains.get(name);
  }

  public Element element(String tap) {
    return ports == null ? null : ports.elements().get(tap);
  }
}
