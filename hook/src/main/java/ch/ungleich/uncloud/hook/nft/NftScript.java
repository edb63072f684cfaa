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

  /** {@link #prelude(List)} without the vm_taps guard. */
  public NftScript prelude() {
    return prelude(List.of());
  }

  /**
   * Table, map, base chain and its dispatch rule: O(1) per frame, whatever the number of ports. Then
   * the vm_taps guard, one rule per pattern: a port the map does not know (the vmap did not match)
   * whose name matches is dropped. Every NIC of a running VM has an element (an unfiltered one to a
   * chain that accepts), so what the guard drops is a tap that has no rules yet.
   *
   * @param guard {@link ch.ungleich.uncloud.hook.model.VmTaps} patterns to drop; empty for none
   */
  public NftScript prelude(List<String> guard) {
    ensure();
    lines.add(
        "add chain " + T + " " + BASE_CHAIN + " { type filter hook prerouting priority " + PRIORITY
            + "; policy accept; }");
    lines.add("flush chain " + T + " " + BASE_CHAIN);
    lines.add("add rule " + T + " " + BASE_CHAIN + " iifname vmap @" + MAP
        + " comment \"ports not in the map (uplinks, host) are not filtered\"");
    for (String p : guard) {
      rule(BASE_CHAIN, "iifname \"" + checkPattern(p) + "\" counter drop",
          "vm_taps: a VM tap without rules (hot-plugged, not set up yet) is dropped, not forwarded");
    }
    return this;
  }

  /**
   * Only table and map, leaving the dispatch chain as it is: enough for {@link #remove}, which never
   * needs the dispatch rule or the guard changed (stopped, release).
   */
  public NftScript ensure() {
    lines.add("add table " + T + " { comment \"uncloud-hook: VM anti-spoofing; managed, do not edit\"; }");
    lines.add("add map " + T + " " + MAP + " { type ifname : verdict; comment \"VM tap -> its chain\"; }");
    return this;
  }

  /**
   * Fills {@code port-<tap>} for one NIC and points the map at it, labelled with its owner. A NIC
   * that is deliberately unfiltered ({@link Mode#OPEN}) gets a chain with a lone {@code accept}: it
   * has an element like every other NIC of a running VM, so the vm_taps guard never drops it.
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
    if (nic.mode() == Mode.OPEN) {
      rule(c, "accept", "deliberately unfiltered (trusted or unlisted = allow): known, so the vm_taps guard lets it pass");
      element(nic.tap(), owner);
      return this;
    }
    String mac = nic.mac().text();
    rule(c, "ether saddr != " + mac + " counter drop", "source MAC is not the NIC's");
    announceSelf(c, mac);
    if (nic.mode() == Mode.MAC_ONLY) {
      rule(c, "ether type arp arp htype 1 arp hlen 6 arp saddr ether " + mac + " accept", "ARP from own MAC");
      laterFragments(c, null, null);
      serverDrops(c);
      rule(c, "ether type ip " + TH_READ + " accept",
          "any IPv4 whose transport header nft read (unlisted = mac-only)");
      rule(c, "ether type ip6 " + TH_READ + " accept",
          "any IPv6 whose upper-layer header nft read (unlisted = mac-only)");
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
      AddressSet v6 = nic.ipv6();
      laterFragments(c, nic.ipv4().elements(), v6.elements());
      serverDrops(c);
      if (nic.dhcpClient()) {
        rule(
            c,
            "ether type ip ip saddr 0.0.0.0 ip daddr 255.255.255.255 udp sport 68 udp dport 67 accept",
            "DHCPv4 client discover");
      }
      if (nic.ipv4().elements().isEmpty()) {
        rule(c, "ether type ip counter drop", "no IPv4 address");
      } else {
        rule(c, "ether type ip " + notIn("ip saddr", nic.ipv4().elements()) + " counter drop",
            "source is not own IPv4");
        rule(c, "ether type ip " + TH_READ + " accept", "own IPv4 whose transport header nft read");
      }
      String notOwnTarget = notIn("@th,64,128", v6.hexElements());
      rule(
          c,
          "ether type ip6 icmpv6 type nd-neighbor-advert " + notOwnTarget + " counter drop",
          "NA target must be own address (transport header, after extension headers)");
      rule(
          c,
          "ether type ip6 ip6 saddr :: icmpv6 type nd-neighbor-solicit " + notOwnTarget + " counter drop",
          "DAD only for own address");
      rule(c, "ether type ip6 ip6 saddr :: icmpv6 type nd-neighbor-solicit " + TARGET_READ + " accept",
          "DAD, RS and MLD reports from ::");
      for (String type : List.of("nd-router-solicit", "mld-listener-report", "mld2-listener-report")) {
        rule(c, "ether type ip6 ip6 saddr :: icmpv6 type " + type + " accept", "DAD, RS and MLD reports from ::");
      }
      rule(c, ("ether type ip6 " + notIn("ip6 saddr", v6.elements())).trim() + " counter drop",
          "source is not own IPv6 or link-local");
      rule(c, "ether type ip6 icmpv6 type nd-neighbor-advert " + TARGET_READ + " accept",
          "NA from own address for own target");
      rule(c, "ether type ip6 icmpv6 type nd-neighbor-advert counter drop", "NA too short to carry its target");
      rule(c, "ether type ip6 " + TH_READ + " accept",
          "own IPv6 whose upper-layer header nft read (RFC 7112)");
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

  /**
   * True when nft could read the first 4 bytes of the transport header: false when the IPv6 header
   * chain ended before it (the kernel then sets no l4proto) or the packet ends inside it. Every accept
   * of IP traffic carries it, so a packet whose upper-layer header the drop rules above could not read
   * is never accepted. Only for first fragments and whole packets: on a later fragment the kernel's
   * 1/2/4-byte transport loads read the fragment's data (IPv4) or the IPv6 header (IPv6), which is why
   * {@link #laterFragments} decides those before any transport-header rule sees them.
   */
  static final String TH_READ = "@th,0,32 >= 0";
  /** True when the 16-byte target of an NS/NA (bytes 8..23 of the ICMPv6 header) is in the packet. */
  static final String TARGET_READ = "@th,64,128 >= 0";

  /**
   * qemu's announce-self after a migration (qemu net/announce.c): RARP request reverse (op 3), sender
   * and target hardware address the NIC's MAC, both protocol addresses 0.0.0.0, to broadcast; the
   * hardware/protocol types and lengths exactly as qemu writes them. Any other RARP frame is dropped
   * by the chain's last rule.
   */
  private void announceSelf(String c, String mac) {
    String hex = "0x" + mac.replace(":", "");
    rule(c, "ether type 0x8035 ether daddr ff:ff:ff:ff:ff:ff @nh,0,64 0x0001080006040003 @nh,64,48 " + hex
            + " @nh,112,32 0 @nh,144,48 " + hex + " @nh,192,32 0 accept",
        "qemu announce-self: RARP request reverse from own MAC for own MAC");
  }

  /**
   * Fragments first. A later fragment (offset != 0) has no transport header, so it is judged by its
   * source alone, before any rule reads one: own source passes (the first fragment carried the header
   * and was judged by the rules below), anything else is dropped. Then ND in any fragment, atomic ones
   * included (RFC 6980); a first fragment whose header chain stops before the upper-layer header never
   * matches {@link #TH_READ} and falls to the chain's last rule (RFC 7112, RFC 7113). {@code own4},
   * {@code own6} null: any source (unlisted = mac-only).
   */
  private void laterFragments(String c, List<String> own4, List<String> own6) {
    laterFragment(c, "ether type ip ip frag-off & 0x1fff != 0", "ip saddr", "IPv4", own4);
    laterFragment(c, "ether type ip6 frag frag-off != 0", "ip6 saddr", "IPv6", own6);
    // Only first (offset 0) and atomic fragments get here. Their structure is checked at fixed offsets
    // inside the lengths the receiver uses, never through the transport header: nft reads that up to
    // the end of the frame, so bytes a VM appends behind the IP packet (Ethernet padding, which every
    // receiver strips) could stand in for a header the packet does not have.
    rule(c, "ether type ip ip frag-off & 0x3fff == 0x2000 ip length 0-67 counter drop",
        "first IPv4 fragment under 68 bytes (RFC 791) may hide the transport header");
    rule(c, "ether type ip6 exthdr frag exists ip6 nexthdr != 44 counter drop",
        "IPv6 fragment header not right after the IPv6 header");
    rule(c, "ether type ip6 ip6 nexthdr 44 " + notIn("@nh,320,8", UPPER_LAYER) + " counter drop",
        "first IPv6 fragment: header chain continues past the fragment header (RFC 7112)");
    rule(c, "ether type ip6 ip6 nexthdr 44 ip6 length 0-15 counter drop",
        "first IPv6 fragment without 8 bytes of upper-layer header (RFC 7112)");
    rule(c, "ether type ip6 ip6 nexthdr 44 @nh,320,8 58 @nh,384,8 133-137 counter drop",
        "RS, RA, NS, NA or redirect in a fragment, atomic too (RFC 6980)");
  }

  /** One family's later fragments ({@code later} matches them): by source alone, {@code own} null = any. */
  private void laterFragment(String c, String later, String saddr, String family, List<String> own) {
    if (own == null) {
      rule(c, later + " accept", "later " + family + " fragment (unlisted = mac-only)");
    } else if (own.isEmpty()) {
      rule(c, later + " counter drop", "later " + family + " fragment, no " + family + " address");
    } else {
      rule(c, later + " " + notIn(saddr, own) + " counter drop",
          "later " + family + " fragment not from own " + family);
      rule(c, later + " accept",
          "later " + family + " fragment from own " + family + " (its first fragment carried the header)");
    }
  }

  /** Next-header values that are not IPv6 extension headers (IANA) nor 59, no next header. */
  private static final List<String> UPPER_LAYER =
      List.of("1-42", "45-50", "52-58", "61-134", "136-138", "141-252", "255");

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

  private static final Pattern GUARD = Pattern.compile("[A-Za-z0-9_.:-]{1,15}\\*?");

  private static String checkPattern(String p) {
    if (p == null || !GUARD.matcher(p).matches() || p.equals("*")) {
      throw new IllegalArgumentException("unsafe vm_taps pattern reached the renderer: " + p);
    }
    return p;
  }

  private static String checkTap(String tap) {
    if (tap == null || !NAME.matcher(tap).matches()) {
      throw new IllegalArgumentException("unsafe interface name reached the renderer: " + tap);
    }
    return tap;
  }
}
