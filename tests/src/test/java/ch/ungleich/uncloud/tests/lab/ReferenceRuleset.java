package ch.ungleich.uncloud.tests.lab;

import java.util.UUID;

/**
 * A hand-written nft ruleset that implements the policy of the hook contract (CONTEXT.md) for one
 * port, in the contract's layout. It is independent of the hook's code: {@code LabSelfTest} uses it
 * to prove that the lab can tell DELIVERED from DROPPED for every matrix case, so that a verdict
 * of the real hook that differs from the matrix is the hook's, not the lab's.
 */
public final class ReferenceRuleset {
  private ReferenceRuleset() {}

  public static String render(String tap, Guest g, UUID domain) {
    String chain = "port-" + tap;
    String ll = g.linkLocal();
    String prefix = g.prefix6();
    int bits = Integer.parseInt(prefix.substring(prefix.indexOf('/') + 1));
    if (bits != 64) {
      throw new IllegalArgumentException("reference ruleset only knows /64 prefixes");
    }
    String prefixHex = Guest.hex128(prefix.substring(0, prefix.indexOf('/'))).substring(0, 18);
    String na = "ether type ip6 icmpv6 type nd-neighbor-advert ";
    String macHex = "0x" + g.mac().replace(":", "");
    return String.join("\n",
        "table bridge uncloud {",
        "  map ports { type ifname : verdict; }",
        "  chain filter-prerouting {",
        "    type filter hook prerouting priority -300; policy accept;",
        "    iifname vmap @ports",
        "  }",
        "  chain " + chain + " {",
        "    ether saddr != " + g.mac() + " counter drop",
        // qemu's announce-self: RARP op 3, own MAC as sender and target, 0.0.0.0 twice, broadcast
        "    ether type 0x8035 ether daddr ff:ff:ff:ff:ff:ff @nh,0,64 0x0001080006040003 @nh,64,48 "
            + macHex + " @nh,112,32 0 @nh,144,48 " + macHex + " @nh,192,32 0 accept",
        // later fragments carry no transport header: source only
        "    ether type ip ip frag-off & 0x1fff != 0 ip saddr " + g.ip4() + " accept",
        "    ether type ip ip frag-off & 0x1fff != 0 counter drop",
        "    ether type ip6 frag frag-off != 0 ip6 saddr { " + g.ip6() + ", " + prefix + ", " + ll
            + " } accept",
        "    ether type ip6 frag frag-off != 0 counter drop",
        // first fragments: the whole header chain and 8 bytes of the upper layer inside the packet
        "    ether type ip ip frag-off & 0x3fff 0x2000 ip length < 68 counter drop",
        "    ether type ip6 exthdr frag exists ip6 nexthdr != ipv6-frag counter drop",
        "    ether type ip6 ip6 nexthdr ipv6-frag @nh,320,8 { 0, 43, 44, 51, 59, 60, 135, 139, 140,"
            + " 253, 254 } counter drop",
        "    ether type ip6 ip6 nexthdr ipv6-frag ip6 length < 16 counter drop",
        // no ND in fragments (RFC 6980)
        "    ether type ip6 ip6 nexthdr ipv6-frag @nh,320,8 58 @nh,384,8 { 133, 134, 135, 136, 137 }"
            + " counter drop",
        // ARP: request/reply only, sender = this NIC (or 0.0.0.0 for RFC 5227 probes)
        "    ether type arp arp htype 1 arp ptype ip arp hlen 6 arp plen 4"
            + " arp operation { request, reply } arp saddr ether " + g.mac()
            + " arp saddr ip { 0.0.0.0, " + g.ip4() + " } accept",
        "    ether type ip udp sport 67 counter drop",
        "    ether type ip ip saddr " + g.ip4() + " accept",
        "    ether type ip ip saddr 0.0.0.0 ip daddr 255.255.255.255 udp sport 68 udp dport 67 accept",
        // icmpv6/udp matches use the transport header the kernel found behind extension headers
        "    ether type ip6 icmpv6 type { nd-router-advert, nd-redirect } counter drop",
        "    ether type ip6 udp sport 547 counter drop",
        // DAD only for an address the NIC may use (a DAD NS for fe80::1 would knock the
        // gateway's address out when it restarts)
        "    ether type ip6 ip6 saddr :: icmpv6 type nd-neighbor-solicit @th,64,128 "
            + Guest.hex128(g.ip6()) + " accept",
        "    ether type ip6 ip6 saddr :: icmpv6 type nd-neighbor-solicit @th,64,64 " + prefixHex
            + " accept",
        "    ether type ip6 ip6 saddr :: icmpv6 type nd-neighbor-solicit @th,64,128 "
            + Guest.hex128(ll) + " accept",
        "    ether type ip6 ip6 saddr :: icmpv6 type { nd-router-solicit, mld2-listener-report,"
            + " mld-listener-report } accept",
        "    ether type ip6 ip6 saddr != { " + g.ip6() + ", " + prefix + ", " + ll
            + " } counter drop",
        // nft 1.0.6 has no icmpv6 taddr: the NA target is @th,64,128
        "    " + na + "@th,64,128 " + Guest.hex128(g.ip6()) + " accept",
        "    " + na + "@th,64,64 " + prefixHex + " accept",
        "    " + na + "@th,64,128 " + Guest.hex128(ll) + " accept",
        "    " + na + "counter drop",
        // an upper-layer header nft could not read (truncated header chain) is not accepted
        "    ether type ip6 @th,0,32 >= 0 accept",
        "    counter drop",
        "  }",
        "}",
        "add element bridge uncloud ports { \"" + tap + "\" comment \"" + domain + " " + g.mac()
            + "\" : goto " + chain + " }",
        "");
  }
}
