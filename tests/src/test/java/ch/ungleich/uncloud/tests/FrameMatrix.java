package ch.ungleich.uncloud.tests;

import static ch.ungleich.uncloud.tests.lab.Verdict.DELIVERED;
import static ch.ungleich.uncloud.tests.lab.Verdict.DROPPED;
import static org.junit.jupiter.api.DynamicTest.dynamicTest;

import ch.ungleich.uncloud.tests.lab.DomainXml;
import ch.ungleich.uncloud.tests.lab.FrameBatch;
import ch.ungleich.uncloud.tests.lab.FrameTool;
import ch.ungleich.uncloud.tests.lab.Guest;
import ch.ungleich.uncloud.tests.lab.NetnsLab;
import ch.ungleich.uncloud.tests.lab.Verdict;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;

/**
 * The frame matrix of issue 3: which frames a filtered VM NIC may put on the bridge. Each case is
 * a scapy expression (variables: {@link Guest#vars()}) sent once from the VM's namespace (or from
 * the injector, an unfiltered bridge port) and the verdict the observer must see.
 */
final class FrameMatrix {
  private FrameMatrix() {}

  enum From { VM, UPLINK }

  record Case(String name, Verdict expected, From from, String expr) {}

  /** The VM of the matrix: exactly the metadata example of the issue. */
  static final Guest GUEST =
      new Guest("52:54:00:aa:bb:01", "192.0.2.10", "2001:db8:0:1::10", "2001:db8:1234::/64");

  static DomainXml domain() {
    return DomainXml.domain("ucf-matrix")
        .nic(GUEST.mac(), "vnet0", GUEST.ip4(), GUEST.ip6(), GUEST.prefix6());
  }

  // building blocks (scapy)
  static final String TO_GW = "Ether(src=MAC, dst=GW_MAC)/";
  static final String TO_ALL = "Ether(src=MAC, dst=BCAST)/";
  static final String ALL_NODES = "Ether(src=MAC, dst='33:33:00:00:00:01')/";
  static final String UDP = "UDP(sport=40000, dport=5000)/Raw(b'payload')";
  static final String IP4_UDP = "IP(src=IP4, dst=GW4)/" + UDP;
  static final String NA_TO_ALL = ALL_NODES + "IPv6(src=LL, dst='ff02::1', hlim=255)/";
  static final String NA_OPT = "/ICMPv6NDOptDstLLAddr(lladdr=MAC)";
  static final String RA = "ICMPv6ND_RA()/ICMPv6NDOptPrefixInfo(prefix='2001:db8:0:1::',"
      + " prefixlen=64)/ICMPv6NDOptSrcLLAddr(lladdr=MAC)";
  /** qemu's announce-self frame (net/announce.c): RARP request reverse, own MAC twice, 0.0.0.0 twice. */
  static final String ANNOUNCE = "Ether(src=MAC, dst=BCAST, type=0x8035)"
      + "/ARP(op=3, hwsrc=MAC, psrc='0.0.0.0', hwdst=MAC, pdst='0.0.0.0')";
  /** An RA the first fragment ends before: behind a 208-byte destination-options header. */
  static final String RA_BEHIND_LONG_DESTOPT =
      "IPv6ExtHdrDestOpt(options=[PadN(optdata=bytes(200))])/" + RA;
  static final String DHCP4_DISCOVER = "BOOTP(chaddr=mac2str(MAC), xid=0x1234)"
      + "/DHCP(options=[('message-type', 'discover'), 'end'])";

  /**
   * Frame {@code index} of scapy's fragmentation of {@code packet} ({@code fragment} for IPv4 at
   * 400 bytes, {@code fragment6} for IPv6 at 1280 bytes, which needs an IPv6ExtHdrFragment in it).
   */
  static String frag(String packet, int index) {
    return packet.contains("IPv6(") ? "fragment6(" + packet + ", 1280)[" + index + "]"
        : "fragment(" + packet + ", 400)[" + index + "]";
  }

  /** First fragment: IPv6 header, fragment header (next header nh), then only the first bytes of rest. */
  static String firstFragment(String eth, String ip6, int nh, String rest, int keep) {
    return eth + ip6 + "/IPv6ExtHdrFragment(nh=" + nh + ", offset=0, m=1, id=0x7112)/Raw(bytes("
        + rest + ")[:" + keep + "])";
  }

  // legit fragmented traffic: the reassembly check (see ReassemblyCheck) sends the same packets
  static final String FRAG_UDP4 = TO_GW + "IP(src=IP4, dst=GW4, id=0x4201)/UDP(sport=40001, dport=5000)"
      + "/Raw(bytes(range(256)) * 4)";
  static final String FRAG_ICMP4 = TO_GW + "IP(src=IP4, dst=GW4, id=0x4202)/ICMP(id=0x4202, seq=1)"
      + "/Raw(b'ping' * 150)";
  /** The second fragment's data starts with 00 43 00 44: what a UDP header from port 67 looks like. */
  static final String FRAG_UDP4_LOOKS_67 = TO_GW + "IP(src=IP4, dst=GW4, id=0x4203)"
      + "/UDP(sport=40003, dport=5000)/Raw(b'q' * 392 + b'\\x00\\x43\\x00\\x44' + b'q' * 100)";
  static final String FRAG_UDP6 = TO_GW + "IPv6(src=IP6, dst=GW6)/IPv6ExtHdrFragment(id=0x4204)"
      + "/UDP(sport=40004, dport=5000)/Raw(bytes(range(256)) * 6)";
  static final String FRAG_ICMP6 = TO_GW + "IPv6(src=IP6, dst=GW6)/IPv6ExtHdrFragment(id=0x4205)"
      + "/ICMPv6EchoRequest(id=0x4205, seq=1, data=b'ping' * 375)";

  /** The fragmented packets of the matrix, with the number of fragments scapy makes of each. */
  static final Map<String, Integer> FRAGMENTED = new java.util.LinkedHashMap<>();

  static {
    FRAGMENTED.put(FRAG_UDP4, 3);
    FRAGMENTED.put(FRAG_ICMP4, 2);
    FRAGMENTED.put(FRAG_UDP4_LOOKS_67, 2);
    FRAGMENTED.put(FRAG_UDP6, 2);
    FRAGMENTED.put(FRAG_ICMP6, 2);
  }

  static List<Case> cases() {
    List<Case> c = new ArrayList<>();
    // ---- what a VM needs: DELIVERED
    c.add(vm("ipv4-udp", DELIVERED, TO_GW + IP4_UDP));
    c.add(vm("ipv6-global-udp", DELIVERED, TO_GW + "IPv6(src=IP6, dst=GW6)/" + UDP));
    c.add(vm("ipv6-from-routed-prefix", DELIVERED, TO_GW + "IPv6(src=NET6, dst=GW6)/" + UDP));
    c.add(vm("ipv6-link-local-eui64", DELIVERED, TO_GW + "IPv6(src=LL, dst=GW_LL)/" + UDP));
    c.add(vm("arp-request", DELIVERED, TO_ALL
        + "ARP(op=1, hwsrc=MAC, psrc=IP4, hwdst='00:00:00:00:00:00', pdst=GW4)"));
    c.add(vm("arp-reply", DELIVERED, TO_GW
        + "ARP(op=2, hwsrc=MAC, psrc=IP4, hwdst=GW_MAC, pdst=GW4)"));
    c.add(vm("arp-probe-rfc5227", DELIVERED, TO_ALL
        + "ARP(op=1, hwsrc=MAC, psrc='0.0.0.0', hwdst='00:00:00:00:00:00', pdst=IP4)"));
    c.add(vm("arp-announcement", DELIVERED, TO_ALL
        + "ARP(op=1, hwsrc=MAC, psrc=IP4, hwdst='00:00:00:00:00:00', pdst=IP4)"));
    c.add(vm("ndp-dad-ns-own-address", DELIVERED, "Ether(src=MAC, dst=mcmac(snma(IP6)))"
        + "/IPv6(src='::', dst=snma(IP6), hlim=255)/ICMPv6ND_NS(tgt=IP6)"));
    c.add(vm("ndp-dad-ns-own-link-local", DELIVERED, "Ether(src=MAC, dst=mcmac(snma(LL)))"
        + "/IPv6(src='::', dst=snma(LL), hlim=255)/ICMPv6ND_NS(tgt=LL)"));
    c.add(vm("ndp-ns-from-own-link-local", DELIVERED, "Ether(src=MAC, dst=mcmac(snma(GW_LL)))"
        + "/IPv6(src=LL, dst=snma(GW_LL), hlim=255)/ICMPv6ND_NS(tgt=GW_LL)"
        + "/ICMPv6NDOptSrcLLAddr(lladdr=MAC)"));
    c.add(vm("ndp-na-own-global", DELIVERED, ALL_NODES + "IPv6(src=IP6, dst='ff02::1', hlim=255)"
        + "/ICMPv6ND_NA(tgt=IP6, R=0, S=0, O=1)" + NA_OPT));
    c.add(vm("ndp-na-own-link-local", DELIVERED, TO_GW + "IPv6(src=LL, dst=GW_LL, hlim=255)"
        + "/ICMPv6ND_NA(tgt=LL, R=0, S=1, O=1)" + NA_OPT));
    c.add(vm("ndp-na-target-in-routed-prefix", DELIVERED, NA_TO_ALL
        + "ICMPv6ND_NA(tgt=NET6, R=0, S=0, O=1)" + NA_OPT));
    // positive control for the extension-header cases below: not every ext header is dropped
    c.add(vm("ndp-na-own-global-behind-destopt", DELIVERED, NA_TO_ALL
        + "IPv6ExtHdrDestOpt()/ICMPv6ND_NA(tgt=IP6, R=0, S=0, O=1)" + NA_OPT));
    c.add(vm("ndp-rs-from-link-local", DELIVERED, "Ether(src=MAC, dst='33:33:00:00:00:02')"
        + "/IPv6(src=LL, dst='ff02::2', hlim=255)/ICMPv6ND_RS()/ICMPv6NDOptSrcLLAddr(lladdr=MAC)"));
    c.add(vm("ndp-rs-from-unspecified", DELIVERED, "Ether(src=MAC, dst='33:33:00:00:00:02')"
        + "/IPv6(src='::', dst='ff02::2', hlim=255)/ICMPv6ND_RS()"));
    c.add(vm("mldv2-report-from-unspecified", DELIVERED, "Ether(src=MAC, dst='33:33:00:00:00:16')"
        + "/IPv6(src='::', dst='ff02::16', hlim=1)/IPv6ExtHdrHopByHop(options=[RouterAlert()])"
        + "/ICMPv6MLReport2(records=[ICMPv6MLDMultAddrRec(rtype=4, dst=snma(IP6))])"));
    c.add(vm("mldv2-report-from-link-local", DELIVERED, "Ether(src=MAC, dst='33:33:00:00:00:16')"
        + "/IPv6(src=LL, dst='ff02::16', hlim=1)/IPv6ExtHdrHopByHop(options=[RouterAlert()])"
        + "/ICMPv6MLReport2(records=[ICMPv6MLDMultAddrRec(rtype=4, dst=snma(IP6))])"));
    c.add(vm("dhcpv4-discover", DELIVERED, TO_ALL
        + "IP(src='0.0.0.0', dst='255.255.255.255')/UDP(sport=68, dport=67)/" + DHCP4_DISCOVER));
    c.add(vm("dhcpv6-solicit-from-link-local", DELIVERED, "Ether(src=MAC, dst='33:33:00:01:00:02')"
        + "/IPv6(src=LL, dst='ff02::1:2')/UDP(sport=546, dport=547)/DHCP6_Solicit(trid=0x1234)"));
    c.add(vm("rarp-qemu-announce-self", DELIVERED, ANNOUNCE));
    fragments(c, "ipv4-udp-fragmented", FRAG_UDP4);
    fragments(c, "ipv4-icmp-echo-fragmented", FRAG_ICMP4);
    fragments(c, "ipv4-udp-fragmented-data-looks-like-sport-67", FRAG_UDP4_LOOKS_67);
    fragments(c, "ipv6-udp-fragmented", FRAG_UDP6);
    fragments(c, "ipv6-icmpv6-echo-fragmented", FRAG_ICMP6);

    // ---- spoofing and everything else: DROPPED
    c.add(vm("spoofed-source-mac", DROPPED, "Ether(src=SPOOF_MAC, dst=GW_MAC)/" + IP4_UDP));
    c.add(vm("spoofed-source-mac-arp", DROPPED, "Ether(src=SPOOF_MAC, dst=BCAST)"
        + "/ARP(op=1, hwsrc=SPOOF_MAC, psrc=IP4, hwdst='00:00:00:00:00:00', pdst=GW4)"));
    c.add(vm("spoofed-ipv4-source", DROPPED, TO_GW + "IP(src=SPOOF4, dst=GW4)/" + UDP));
    c.add(vm("spoofed-ipv6-source", DROPPED, TO_GW + "IPv6(src=SPOOF6, dst=GW6)/" + UDP));
    c.add(vm("ipv6-source-outside-routed-prefix", DROPPED,
        TO_GW + "IPv6(src=OUTSIDE6, dst=GW6)/" + UDP));
    c.add(vm("ipv6-foreign-link-local-source", DROPPED,
        TO_GW + "IPv6(src=FOREIGN_LL, dst=GW_LL)/" + UDP));
    c.add(vm("ipv6-unspecified-source-udp", DROPPED, TO_GW + "IPv6(src='::', dst=GW6)/" + UDP));
    c.add(vm("arp-forged-sender-ip-reply", DROPPED, TO_GW
        + "ARP(op=2, hwsrc=MAC, psrc=SPOOF4, hwdst=GW_MAC, pdst=GW4)"));
    c.add(vm("arp-forged-sender-ip-gateway-announcement", DROPPED, TO_ALL
        + "ARP(op=1, hwsrc=MAC, psrc=GW4, hwdst='00:00:00:00:00:00', pdst=GW4)"));
    c.add(vm("arp-sender-mac-not-frame-mac", DROPPED, TO_GW
        + "ARP(op=2, hwsrc=SPOOF_MAC, psrc=IP4, hwdst=GW_MAC, pdst=GW4)"));
    c.add(vm("arp-operation-not-request-or-reply", DROPPED, TO_ALL
        + "ARP(op=3, hwsrc=MAC, psrc=IP4, hwdst=MAC, pdst=IP4)"));
    c.add(vm("ndp-na-forged-target", DROPPED, NA_TO_ALL
        + "ICMPv6ND_NA(tgt=SPOOF6, R=0, S=0, O=1)" + NA_OPT));
    c.add(vm("ndp-na-forged-target-behind-hop-by-hop", DROPPED, NA_TO_ALL
        + "IPv6ExtHdrHopByHop()/ICMPv6ND_NA(tgt=SPOOF6, R=0, S=0, O=1)" + NA_OPT));
    c.add(vm("ndp-na-forged-target-behind-destopt", DROPPED, NA_TO_ALL
        + "IPv6ExtHdrDestOpt()/ICMPv6ND_NA(tgt=SPOOF6, R=0, S=0, O=1)" + NA_OPT));
    c.add(vm("ndp-na-forged-target-behind-hbh-and-destopt", DROPPED, NA_TO_ALL
        + "IPv6ExtHdrHopByHop()/IPv6ExtHdrDestOpt()/ICMPv6ND_NA(tgt=SPOOF6, R=0, S=0, O=1)"
        + NA_OPT));
    c.add(vm("ndp-na-gateway-target-fe80-1-from-own-ll", DROPPED, NA_TO_ALL
        + "ICMPv6ND_NA(tgt=GW_LL, R=1, S=0, O=1)" + NA_OPT));
    c.add(vm("ndp-na-gateway-impersonation-src-and-target-fe80-1", DROPPED, ALL_NODES
        + "IPv6(src=GW_LL, dst='ff02::1', hlim=255)/ICMPv6ND_NA(tgt=GW_LL, R=1, S=0, O=1)"
        + NA_OPT));
    c.add(vm("ndp-ns-from-gateway-fe80-1", DROPPED, "Ether(src=MAC, dst=mcmac(snma(SPOOF6)))"
        + "/IPv6(src=GW_LL, dst=snma(SPOOF6), hlim=255)/ICMPv6ND_NS(tgt=SPOOF6)"
        + "/ICMPv6NDOptSrcLLAddr(lladdr=MAC)"));
    c.add(vm("ndp-dad-ns-for-gateway-fe80-1", DROPPED, "Ether(src=MAC, dst=mcmac(snma(GW_LL)))"
        + "/IPv6(src='::', dst=snma(GW_LL), hlim=255)/ICMPv6ND_NS(tgt=GW_LL)"));
    c.add(vm("ndp-dad-ns-for-foreign-address", DROPPED, "Ether(src=MAC, dst=mcmac(snma(SPOOF6)))"
        + "/IPv6(src='::', dst=snma(SPOOF6), hlim=255)/ICMPv6ND_NS(tgt=SPOOF6)"));
    c.add(vm("ndp-na-from-unspecified", DROPPED, ALL_NODES
        + "IPv6(src='::', dst='ff02::1', hlim=255)/ICMPv6ND_NA(tgt=IP6, R=0, S=0, O=1)" + NA_OPT));
    c.add(vm("ndp-router-advertisement", DROPPED, NA_TO_ALL + RA));
    c.add(vm("ndp-router-advertisement-behind-destopt", DROPPED,
        NA_TO_ALL + "IPv6ExtHdrDestOpt()/" + RA));
    c.add(vm("icmpv6-redirect", DROPPED, TO_GW + "IPv6(src=LL, dst=GW_LL, hlim=255)"
        + "/ICMPv6ND_Redirect(tgt=LL, dst=GW6)"));
    c.add(vm("dhcpv4-server-offer", DROPPED, TO_ALL
        + "IP(src=IP4, dst='255.255.255.255')/UDP(sport=67, dport=68)"
        + "/BOOTP(op=2, yiaddr=SPOOF4, siaddr=IP4, chaddr=mac2str(SPOOF_MAC), xid=0x1234)"
        + "/DHCP(options=[('message-type', 'offer'), ('server_id', IP4), 'end'])"));
    c.add(vm("dhcpv6-server-advertise", DROPPED, TO_GW
        + "IPv6(src=LL, dst=FOREIGN_LL)/UDP(sport=547, dport=546)/DHCP6_Advertise(trid=0x1234)"));
    c.add(vm("vlan-8021q-tagged-legit-ipv4", DROPPED, TO_GW + "Dot1Q(vlan=10)/" + IP4_UDP));
    c.add(vm("vlan-8021q-tagged-legit-ipv6", DROPPED,
        TO_GW + "Dot1Q(vlan=10)/IPv6(src=IP6, dst=GW6)/" + UDP));
    c.add(vm("vlan-8021q-tagged-legit-arp", DROPPED, TO_ALL
        + "Dot1Q(vlan=10)/ARP(op=1, hwsrc=MAC, psrc=IP4, hwdst='00:00:00:00:00:00', pdst=GW4)"));
    c.add(vm("vlan-priority-tag-vid0-legit-ipv4", DROPPED,
        TO_GW + "Dot1Q(vlan=0, prio=5)/" + IP4_UDP));
    c.add(vm("qinq-8021ad-legit-ipv4", DROPPED,
        TO_GW + "Dot1AD(vlan=20)/Dot1Q(vlan=10)/" + IP4_UDP));
    c.add(vm("pppoe-discovery-padi", DROPPED, TO_ALL + "PPPoED(code=0x09, sessionid=0)"));
    c.add(vm("pppoe-session-ipv4", DROPPED,
        TO_GW + "PPPoE(sessionid=1)/PPP(proto=0x0021)/" + IP4_UDP));
    c.add(vm("ieee8023-llc", DROPPED,
        "Dot3(src=MAC, dst=GW_MAC)/LLC(dsap=0x42, ssap=0x42, ctrl=3)/Raw(bytes(35))"));
    c.add(vm("ieee8023-llc-snap-ipv4", DROPPED, "Dot3(src=MAC, dst=GW_MAC)"
        + "/LLC(dsap=0xaa, ssap=0xaa, ctrl=3)/SNAP(OUI=0, code=0x0800)/" + IP4_UDP));
    // RARP: only qemu's announce frame passes
    c.add(vm("rarp-reply", DROPPED, ANNOUNCE.replace("op=3", "op=4")));
    c.add(vm("rarp-request-op1", DROPPED, ANNOUNCE.replace("op=3", "op=1")));
    c.add(vm("rarp-foreign-sender-hw", DROPPED, ANNOUNCE.replace("hwsrc=MAC", "hwsrc=SPOOF_MAC")));
    c.add(vm("rarp-foreign-target-hw", DROPPED, ANNOUNCE.replace("hwdst=MAC", "hwdst=SPOOF_MAC")));
    c.add(vm("rarp-sender-ip-set", DROPPED, ANNOUNCE.replace("psrc='0.0.0.0'", "psrc=IP4")));
    c.add(vm("rarp-target-ip-set", DROPPED, ANNOUNCE.replace("pdst='0.0.0.0'", "pdst=GW4")));
    c.add(vm("rarp-unicast", DROPPED, ANNOUNCE.replace("dst=BCAST", "dst=GW_MAC")));
    c.add(vm("rarp-ptype-ipv6", DROPPED, ANNOUNCE.replace("op=3,", "op=3, ptype=0x86dd,")));
    c.add(vm("rarp-hlen-8", DROPPED, ANNOUNCE.replace("op=3,", "op=3, hwlen=8,")));
    c.add(vm("rarp-foreign-frame-mac", DROPPED, ANNOUNCE.replace("Ether(src=MAC", "Ether(src=SPOOF_MAC")
        .replace("hwsrc=MAC", "hwsrc=SPOOF_MAC").replace("hwdst=MAC", "hwdst=SPOOF_MAC")));
    // fragment evasions (RFC 7112, 7113, 6980): each would pass as "own source" if the filter only
    // looked for an upper-layer header it could not find
    String ll = "IPv6(src=LL, dst='ff02::1', hlim=255)";
    c.add(vm("frag-ra-behind-destopt-cut-in-first-fragment", DROPPED,
        firstFragment(ALL_NODES, ll, 60, RA_BEHIND_LONG_DESTOPT, 64)));
    // the same first fragment (IPv6 payload length 72), padded after the IPv6 packet so that a filter
    // that reads past the packet's end finds an echo request where the upper-layer header should be;
    // receivers discard the padding
    c.add(vm("frag-ra-behind-destopt-cut-padded-with-fake-header", DROPPED, ALL_NODES
        + "IPv6(src=LL, dst='ff02::1', hlim=255, plen=72)/IPv6ExtHdrFragment(nh=60, offset=0, m=1, id=0x711e)"
        + "/Raw(bytes(" + RA_BEHIND_LONG_DESTOPT + ")[:64] + bytes(144) + b'\\x80\\x00\\x00\\x00')"));
    c.add(vm("frag-ra-first-fragment-ends-at-fragment-header", DROPPED,
        firstFragment(ALL_NODES, ll, 58, RA, 0)));
    c.add(vm("frag-ra-first-fragment-4-bytes-of-icmpv6", DROPPED,
        firstFragment(ALL_NODES, ll, 58, RA, 4)));
    c.add(vm("frag-ra-whole-in-first-fragment", DROPPED,
        firstFragment(ALL_NODES, ll, 58, RA, 200)));
    c.add(vm("frag-ra-behind-hop-by-hop-then-fragment-header", DROPPED, ALL_NODES + ll
        + "/IPv6ExtHdrHopByHop()/IPv6ExtHdrFragment(offset=0, m=1, id=0x7113)/" + RA));
    c.add(vm("frag-na-forged-target-behind-destopt-cut", DROPPED, firstFragment(ALL_NODES, ll, 60,
        "IPv6ExtHdrDestOpt(options=[PadN(optdata=bytes(200))])/ICMPv6ND_NA(tgt=SPOOF6, R=0, S=0, O=1)"
            + NA_OPT, 64)));
    c.add(vm("frag-dad-ns-foreign-target-behind-destopt-cut", DROPPED, firstFragment(
        "Ether(src=MAC, dst=mcmac(snma(SPOOF6)))/", "IPv6(src='::', dst=snma(SPOOF6), hlim=255)", 60,
        "IPv6ExtHdrDestOpt(options=[PadN(optdata=bytes(200))])/ICMPv6ND_NS(tgt=SPOOF6)", 64)));
    c.add(vm("frag-dhcpv6-advertise-behind-destopt-cut", DROPPED, firstFragment(TO_GW,
        "IPv6(src=LL, dst=FOREIGN_LL)", 60, "IPv6ExtHdrDestOpt(options=[PadN(optdata=bytes(200))])"
            + "/UDP(sport=547, dport=546)/DHCP6_Advertise(trid=0x1234)", 64)));
    c.add(vm("frag-dhcpv6-advertise-first-fragment-4-bytes-of-udp", DROPPED, firstFragment(TO_GW,
        "IPv6(src=LL, dst=FOREIGN_LL)", 17, "UDP(sport=547, dport=546)/DHCP6_Advertise(trid=0x1234)", 4)));
    // atomic fragments (offset 0, no more fragments) of ND messages that pass unfragmented
    c.add(vm("frag-atomic-ndp-na-own-global", DROPPED, ALL_NODES + "IPv6(src=IP6, dst='ff02::1', hlim=255)"
        + "/IPv6ExtHdrFragment(offset=0, m=0, id=0x7114)/ICMPv6ND_NA(tgt=IP6, R=0, S=0, O=1)" + NA_OPT));
    c.add(vm("frag-atomic-ndp-ns-from-own-link-local", DROPPED, "Ether(src=MAC, dst=mcmac(snma(GW_LL)))"
        + "/IPv6(src=LL, dst=snma(GW_LL), hlim=255)/IPv6ExtHdrFragment(offset=0, m=0, id=0x7115)"
        + "/ICMPv6ND_NS(tgt=GW_LL)/ICMPv6NDOptSrcLLAddr(lladdr=MAC)"));
    c.add(vm("frag-atomic-ndp-dad-ns-own-address", DROPPED, "Ether(src=MAC, dst=mcmac(snma(IP6)))"
        + "/IPv6(src='::', dst=snma(IP6), hlim=255)/IPv6ExtHdrFragment(offset=0, m=0, id=0x7116)"
        + "/ICMPv6ND_NS(tgt=IP6)"));
    c.add(vm("frag-atomic-ndp-rs-from-link-local", DROPPED, "Ether(src=MAC, dst='33:33:00:00:00:02')"
        + "/IPv6(src=LL, dst='ff02::2', hlim=255)/IPv6ExtHdrFragment(offset=0, m=0, id=0x7117)"
        + "/ICMPv6ND_RS()/ICMPv6NDOptSrcLLAddr(lladdr=MAC)"));
    c.add(vm("frag-atomic-ndp-ra", DROPPED, NA_TO_ALL
        + "IPv6ExtHdrFragment(offset=0, m=0, id=0x7118)/" + RA));
    c.add(vm("frag-atomic-icmpv6-redirect", DROPPED, TO_GW + "IPv6(src=LL, dst=GW_LL, hlim=255)"
        + "/IPv6ExtHdrFragment(offset=0, m=0, id=0x7119)/ICMPv6ND_Redirect(tgt=LL, dst=GW6)"));
    c.add(vm("ipv6-header-chain-truncated-unfragmented", DROPPED, TO_GW + "IPv6(src=IP6, dst=GW6, nh=60)"
        + "/Raw(bytes(IPv6ExtHdrDestOpt(options=[PadN(optdata=bytes(200))])/" + UDP + ")[:16])"));
    c.add(vm("ndp-na-too-short-for-its-target", DROPPED, ALL_NODES + "IPv6(src=LL, dst='ff02::1',"
        + " hlim=255, nh=58)/Raw(bytes(ICMPv6ND_NA(tgt=SPOOF6, R=0, S=0, O=1))[:8])"));
    c.add(vm("frag-ipv6-later-fragment-spoofed-source", DROPPED, TO_GW + "IPv6(src=SPOOF6, dst=GW6)"
        + "/IPv6ExtHdrFragment(nh=17, offset=8, m=0, id=0x711a)/Raw(b'x' * 64)"));
    c.add(vm("frag-ipv4-later-fragment-spoofed-source", DROPPED, TO_GW + "IP(src=SPOOF4, dst=GW4,"
        + " proto=17, frag=50, id=0x711b)/Raw(b'x' * 64)"));
    c.add(vm("frag-ipv4-dhcp-offer-first-fragment-without-udp-header", DROPPED, TO_ALL
        + "IP(src=IP4, dst='255.255.255.255', proto=17, flags='MF', frag=0, id=0x711c)"));
    c.add(vm("frag-ipv4-dhcp-offer-first-fragment", DROPPED, frag(TO_ALL
        + "IP(src=IP4, dst='255.255.255.255', id=0x711d)/UDP(sport=67, dport=68)"
        + "/BOOTP(op=2, yiaddr=SPOOF4, siaddr=IP4, chaddr=mac2str(SPOOF_MAC), xid=0x1234)"
        + "/DHCP(options=[('message-type', 'offer'), ('server_id', IP4), 'end'])", 0)));
    c.add(vm("unknown-ethertype-88b5", DROPPED,
        "Ether(src=MAC, dst=GW_MAC, type=0x88b5)/Raw(b'local experimental')"));
    c.add(vm("ipv4-unspecified-source-not-dhcp", DROPPED, TO_ALL
        + "IP(src='0.0.0.0', dst='255.255.255.255')/UDP(sport=5000, dport=5001)/Raw(b'x')"));
    c.add(vm("ipv4-unspecified-source-dhcp-ports-unicast", DROPPED, TO_GW
        + "IP(src='0.0.0.0', dst=GW4)/UDP(sport=68, dport=67)/" + DHCP4_DISCOVER));
    c.add(vm("ipv4-unspecified-source-icmp", DROPPED,
        TO_GW + "IP(src='0.0.0.0', dst=GW4)/ICMP()/Raw(b'ping')"));

    // ---- a bridge port that is no VM's tap is never filtered: DELIVERED
    c.add(uplink("uplink-spoofed-mac-and-ipv4", DELIVERED,
        "Ether(src=SPOOF_MAC, dst=GW_MAC)/IP(src=SPOOF4, dst=GW4)/" + UDP));
    c.add(uplink("uplink-router-advertisement", DELIVERED, "Ether(src=SPOOF_MAC,"
        + " dst='33:33:00:00:00:01')/IPv6(src=GW_LL, dst='ff02::1', hlim=255)/"
        + RA.replace("lladdr=MAC", "lladdr=SPOOF_MAC")));
    c.add(uplink("uplink-na-for-the-vm-address", DELIVERED, "Ether(src=SPOOF_MAC,"
        + " dst='33:33:00:00:00:01')/IPv6(src=FOREIGN_LL, dst='ff02::1', hlim=255)"
        + "/ICMPv6ND_NA(tgt=IP6, R=0, S=0, O=1)/ICMPv6NDOptDstLLAddr(lladdr=SPOOF_MAC)"));
    c.add(uplink("uplink-vlan-tagged", DELIVERED,
        "Ether(src=SPOOF_MAC, dst=GW_MAC)/Dot1Q(vlan=10)/IP(src=SPOOF4, dst=GW4)/" + UDP));
    return c;
  }

  /** Every fragment of {@code packet} from the VM: each must reach the observer byte for byte. */
  static void fragments(List<Case> c, String name, String packet) {
    int n = FRAGMENTED.get(packet);
    for (int i = 0; i < n; i++) {
      c.add(vm(name + "-" + (i + 1) + "of" + n, DELIVERED, frag(packet, i)));
    }
  }

  static Case vm(String name, Verdict v, String expr) {
    return new Case(name, v, From.VM, expr);
  }

  static Case uplink(String name, Verdict v, String expr) {
    return new Case(name, v, From.UPLINK, expr);
  }

  /** All cases in one batch: VM cases from VM 0, uplink cases from the injector. */
  static Map<String, FrameBatch.Outcome> send(FrameTool tool, NetnsLab lab, List<Case> cases) {
    FrameBatch b = tool.batch(lab);
    for (Case c : cases) {
      b.add(c.name(), c.from() == From.VM ? lab.vm(0) : lab.injector(), GUEST, c.expr());
    }
    return b.run();
  }

  /** One dynamic test per case: "name: VERDICT". */
  static Stream<DynamicTest> verdicts(List<Case> cases, Map<String, FrameBatch.Outcome> got,
      Function<Case, Verdict> expected, String context) {
    return cases.stream().map(c -> dynamicTest(c.name() + ": " + expected.apply(c), () -> {
      FrameBatch.Outcome o = got.get(c.name());
      if (o.verdict() != expected.apply(c)) {
        throw new AssertionError("expected " + expected.apply(c) + ", observed " + o.verdict()
            + "\n" + o.describe() + "\n" + context);
      }
    }));
  }
}
