package ch.ungleich.uncloud.hook.nft;

import ch.ungleich.uncloud.hook.model.AddressSet;
import ch.ungleich.uncloud.hook.model.Mode;
import ch.ungleich.uncloud.hook.model.NicPolicy;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Pattern;

/**
 * Builds one nft transaction for our table. Pure and deterministic: the same calls give the same
 * text, which the golden tests compare byte for byte and {@code nft -f -} applies atomically.
 *
 * <p>Every statement is safe to repeat: chains are added then flushed before their rules (kube-proxy's
 * {@code ensureChain}), and a map element is first added with the value it must have, so that its
 * deletion cannot fail when it is already gone. The value of element {@code "vnet0"} is always
 * {@code jump port-vnet0}: one chain per tap name, so a tap reused by another domain gets its chain
 * flushed and refilled and can never keep the previous owner's rules.
 */
public final class NftScript {
  public static final String FAMILY = "bridge";
  public static final String TABLE = "uncloud";
  public static final String MAP = "ports";
  public static final String BASE_CHAIN = "filter-prerouting";
  /** Before the bridge filter priority (-200), so other tables see only what we let through. */
  public static final int PRIORITY = -300;

  private static final Pattern NAME = Pattern.compile("[A-Za-z0-9][A-Za-z0-9_.-]{0,14}");
  private static final String T = FAMILY + " " + TABLE;

  private final List<String> lines = new ArrayList<>();

  /** The chain that filters frames entering the bridge from {@code tap}. */
  public static String chain(String tap) {
    return "port-" + checkTap(tap);
  }

  /** Table, map, base chain and its single dispatch rule: O(1) per frame, whatever the number of ports. */
  public NftScript prelude() {
    lines.add("add table " + T + " { comment \"uncloud-hook: VM anti-spoofing; managed, do not edit\"; }");
    lines.add("add map " + T + " " + MAP + " { type ifname : verdict; comment \"VM tap -> its chain\"; }");
    lines.add(
        "add chain " + T + " " + BASE_CHAIN + " { type filter hook prerouting priority " + PRIORITY
            + "; policy accept; }");
    lines.add("flush chain " + T + " " + BASE_CHAIN);
    lines.add("add rule " + T + " " + BASE_CHAIN + " iifname vmap @" + MAP
        + " comment \"ports not in the map (uplinks, host) are not filtered\"");
    return this;
  }

  /**
   * Fills {@code port-<tap>} for one NIC and points the map at it, labelled with its owner.
   *
   * <p>No sets, not even anonymous ones: one rule per allowed address or prefix, ranges for constants,
   * and "target not in any allowed range" as one rule of negated comparisons. Every anonymous set a
   * port chain holds is fetched by nft's userspace cache on every later transaction, so with sets an
   * event costs O(ports on the host) (measured: one more port took 2 s at 1000 ports against 0.11 s on
   * an empty host); without them it takes the same time at 1000 ports as at none.
   */
  public NftScript install(NicPolicy nic, String owner) {
    String c = chain(nic.tap());
    lines.add("add chain " + T + " " + c);
    lines.add("flush chain " + T + " " + c);
    String mac = nic.mac().text();
    rule(c, "ether saddr != " + mac + " counter drop", "source MAC is not the NIC's");
    if (nic.mode() == Mode.MAC_ONLY) {
      rule(c, "ether type arp arp htype 1 arp hlen 6 arp saddr ether " + mac + " accept", "ARP from own MAC");
      serverDrops(c);
      rule(c, "ether type ip accept", "any IPv4 (unlisted = mac-only)");
      rule(c, "ether type ip6 accept", "any IPv6 (unlisted = mac-only)");
    } else {
      List<String> arpSources = new ArrayList<>();
      arpSources.add("0.0.0.0");
      arpSources.addAll(nic.ipv4().elements());
      for (String src : arpSources) {
        rule(
            c,
            "ether type arp arp htype 1 arp ptype ip arp hlen 6 arp plen 4 arp operation 1-2"
                + " arp saddr ether " + mac + " arp saddr ip " + src + " accept",
            src.equals("0.0.0.0") ? "ARP probe (RFC 5227) from own MAC" : "ARP from own MAC and IPv4");
      }
      serverDrops(c);
      if (nic.dhcpClient()) {
        rule(
            c,
            "ether type ip ip saddr 0.0.0.0 ip daddr 255.255.255.255 udp sport 68 udp dport 67 accept",
            "DHCPv4 client discover");
      }
      for (String src : nic.ipv4().elements()) {
        rule(c, "ether type ip ip saddr " + src + " accept", "own IPv4");
      }
      AddressSet v6 = nic.ipv6();
      String notOwnTarget = notIn("@th,64,128", v6.hexElements());
      rule(
          c,
          "ether type ip6 icmpv6 type nd-neighbor-advert " + notOwnTarget + " counter drop",
          "NA target must be own address (transport header, after extension headers)");
      rule(
          c,
          "ether type ip6 ip6 saddr :: icmpv6 type nd-neighbor-solicit " + notOwnTarget + " counter drop",
          "DAD only for own address");
      for (String type : List.of("nd-neighbor-solicit", "nd-router-solicit", "mld-listener-report",
          "mld2-listener-report")) {
        rule(c, "ether type ip6 ip6 saddr :: icmpv6 type " + type + " accept", "DAD, RS and MLD reports from ::");
      }
      for (String src : v6.elements()) {
        rule(c, "ether type ip6 ip6 saddr " + src + " accept", "own IPv6 or link-local");
      }
    }
    rule(c, "counter drop", "everything else: other sources, ethertypes, VLAN tags, PPPoE, LLC");
    element(nic.tap(), owner);
    return this;
  }

  /**
   * Points the map element of {@code tap} at its chain with a new owner label, leaving the chain and
   * its counters alone (reconcile, when only the element is missing or wrong).
   */
  public NftScript relabel(String tap, String owner) {
    element(tap, owner);
    return this;
  }

  /** Removes the tap's element and chain; a no-op if they are already gone. */
  public NftScript remove(String tap) {
    String c = chain(tap);
    lines.add("add chain " + T + " " + c);
    lines.add("add element " + T + " " + MAP + " { \"" + tap + "\" : jump " + c + " }");
    lines.add("delete element " + T + " " + MAP + " { \"" + tap + "\" }");
    lines.add("delete chain " + T + " " + c);
    return this;
  }

  /** Deletes the whole table (uninstall); {@code add} first so it cannot fail when absent. */
  public NftScript dropTable() {
    lines.add("add table " + T);
    lines.add("delete table " + T);
    return this;
  }

  public boolean isEmpty() {
    return lines.isEmpty();
  }

  public String render() {
    return lines.isEmpty() ? "" : String.join("\n", lines) + "\n";
  }

  @Override
  public String toString() {
    return render();
  }

  private void serverDrops(String c) {
    rule(c, "ether type ip udp sport 67 counter drop", "DHCPv4 server answer");
    rule(
        c,
        "ether type ip6 icmpv6 type nd-router-advert counter drop",
        "router advertisement");
    rule(c, "ether type ip6 icmpv6 type nd-redirect counter drop", "ICMPv6 redirect");
    rule(c, "ether type ip6 icmpv6 type router-renumbering counter drop", "router renumbering");
    rule(c, "ether type ip6 udp sport 547 counter drop", "DHCPv6 server answer");
  }

  private void element(String tap, String owner) {
    String c = chain(tap);
    String comment = comment(owner);
    lines.add("add element " + T + " " + MAP + " { \"" + tap + "\" : jump " + c + " }");
    lines.add("delete element " + T + " " + MAP + " { \"" + tap + "\" }");
    lines.add("add element " + T + " " + MAP + " { \"" + tap + "\" comment \"" + comment + "\" : jump " + c + " }");
  }

  private void rule(String chain, String expr, String comment) {
    lines.add("add rule " + T + " " + chain + " " + expr + " comment \"" + comment(comment) + "\"");
  }

  /** {@code X != a X != b ...}: true when X is in none of the values or ranges (a set, without one). */
  private static String notIn(String expr, List<String> values) {
    StringBuilder b = new StringBuilder();
    for (String v : values) {
      if (b.length() > 0) {
        b.append(' ');
      }
      b.append(expr).append(" != ").append(v);
    }
    return b.toString();
  }

  /** nft comments: at most 128 bytes, no quotes or backslashes, printable ASCII. */
  static String comment(String s) {
    StringBuilder b = new StringBuilder();
    for (char ch : s.toCharArray()) {
      b.append(ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\' ? ch : '_');
    }
    return b.length() > 127 ? b.substring(0, 127) : b.toString();
  }

  private static String checkTap(String tap) {
    if (tap == null || !NAME.matcher(tap).matches()) {
      throw new IllegalArgumentException("unsafe interface name reached the renderer: " + tap);
    }
    return tap;
  }
}
