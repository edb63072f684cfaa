package ch.ungleich.uncloud.hook.demo;

import static ch.ungleich.uncloud.hook.demo.Frames.BROADCAST;
import static ch.ungleich.uncloud.hook.demo.Frames.ETH_ARP;
import static ch.ungleich.uncloud.hook.demo.Frames.ETH_IPV4;
import static ch.ungleich.uncloud.hook.demo.Frames.ETH_IPV6;
import static ch.ungleich.uncloud.hook.demo.Frames.arp;
import static ch.ungleich.uncloud.hook.demo.Frames.concat;
import static ch.ungleich.uncloud.hook.demo.Frames.ethernet;
import static ch.ungleich.uncloud.hook.demo.Frames.marker;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * What the demo sends and expects: two "VMs" on one bridge, vm1 well-behaved, vm2 spoofing, and a
 * router on the uplink. Pure: addresses, domain XML, frames, and the table of results. Only
 * documentation addresses (192.0.2.0/24, 2001:db8::/32) and QEMU's MAC prefix are used.
 */
public final class DemoScenario {
  public static final String NAMESPACE = "https://ungleich.ch/uncloud/hook/1";

  /** A demo VM: name, UUID, tap in the hypervisor, MAC and addresses of its one NIC. */
  public record Vm(String name, String uuid, String tap, String mac, String ipv4, String ipv6) {
    /** The EUI-64 link-local address the guest would use. */
    public String linkLocal() {
      byte[] m = Frames.mac(mac);
      return String.format(
          "fe80::%x:%x:%x:%x", ((m[0] ^ 2) & 0xff) << 8 | (m[1] & 0xff), (m[2] & 0xff) << 8 | 0xff,
          0xfe00 | (m[3] & 0xff), (m[4] & 0xff) << 8 | (m[5] & 0xff));
    }

    /** The libvirt domain XML the hook gets on stdin: one bridged NIC with our metadata. */
    public String domainXml(String bridge) {
      return "<domain type='kvm'>\n"
          + "  <name>" + name + "</name>\n"
          + "  <uuid>" + uuid + "</uuid>\n"
          + "  <metadata>\n"
          + "    <uc:firewall xmlns:uc=\"" + NAMESPACE + "\">\n"
          + "      <uc:interface mac=\"" + mac + "\">\n"
          + "        <uc:ip address=\"" + ipv4 + "\"/>\n"
          + "        <uc:ip address=\"" + ipv6 + "\"/>\n"
          + "      </uc:interface>\n"
          + "    </uc:firewall>\n"
          + "  </metadata>\n"
          + "  <devices>\n"
          + "    <interface type='bridge'>\n"
          + "      <mac address='" + mac + "'/>\n"
          + "      <source bridge='" + bridge + "'/>\n"
          + "      <target dev='" + tap + "'/>\n"
          + "      <model type='virtio'/>\n"
          + "      <alias name='net0'/>\n"
          + "    </interface>\n"
          + "  </devices>\n"
          + "</domain>\n";
    }
  }

  /** One frame: who sends it, what it is, whether it should reach the uplink. */
  public record Probe(int id, Vm from, String what, byte[] frame, boolean expectDelivered) {}

  public static final Vm VM1 =
      new Vm("demo-vm1", "c0ffee00-0000-4000-8000-000000000001", "vnet0", "52:54:00:00:00:01", "192.0.2.11",
          "2001:db8::11");
  public static final Vm VM2 =
      new Vm("demo-vm2", "c0ffee00-0000-4000-8000-000000000002", "vnet1", "52:54:00:00:00:02", "192.0.2.12",
          "2001:db8::12");
  public static final String ROUTER_MAC = "52:54:00:00:00:fe";
  public static final String ROUTER_IPV4 = "192.0.2.1";
  public static final String ROUTER_IPV6 = "2001:db8::1";

  private DemoScenario() {}

  /** The frames, in sending order: first vm1's legitimate ones, then vm2's. */
  public static List<Probe> probes() {
    List<Probe> p = new ArrayList<>();
    Vm a = VM1;
    Vm b = VM2;
    add(p, a, "ARP who-has " + ROUTER_IPV4 + " tell " + a.ipv4, true,
        id -> ethernet(BROADCAST, a.mac, ETH_ARP,
            concat(arp(1, a.mac, a.ipv4, "00:00:00:00:00:00", ROUTER_IPV4), marker(id))));
    add(p, a, "IPv4 UDP from own " + a.ipv4, true,
        id -> ethernet(ROUTER_MAC, a.mac, ETH_IPV4, Frames.udp4(a.ipv4, ROUTER_IPV4, 40000, 7, marker(id))));
    add(p, a, "IPv6 UDP from own " + a.ipv6, true,
        id -> ethernet(ROUTER_MAC, a.mac, ETH_IPV6, Frames.udp6(a.ipv6, ROUTER_IPV6, 40000, 7, marker(id))));
    add(p, a, "DHCPv4 discover 0.0.0.0:68 -> broadcast:67", true,
        id -> ethernet(BROADCAST, a.mac, ETH_IPV4, Frames.udp4("0.0.0.0", "255.255.255.255", 68, 67, marker(id))));
    add(p, b, "IPv4 UDP from own " + b.ipv4, true,
        id -> ethernet(ROUTER_MAC, b.mac, ETH_IPV4, Frames.udp4(b.ipv4, ROUTER_IPV4, 40000, 7, marker(id))));
    add(p, b, "IPv4 UDP from vm1's " + a.ipv4, false,
        id -> ethernet(ROUTER_MAC, b.mac, ETH_IPV4, Frames.udp4(a.ipv4, ROUTER_IPV4, 40000, 7, marker(id))));
    add(p, b, "Ethernet source = vm1's MAC " + a.mac, false,
        id -> ethernet(ROUTER_MAC, a.mac, ETH_IPV4, Frames.udp4(a.ipv4, ROUTER_IPV4, 40000, 7, marker(id))));
    add(p, b, "ARP reply " + ROUTER_IPV4 + " is-at own MAC (hijack)", false,
        id -> ethernet(BROADCAST, b.mac, ETH_ARP,
            concat(arp(2, b.mac, ROUTER_IPV4, BROADCAST, ROUTER_IPV4), marker(id))));
    add(p, b, "IPv6 UDP from vm1's " + a.ipv6, false,
        id -> ethernet(ROUTER_MAC, b.mac, ETH_IPV6, Frames.udp6(a.ipv6, ROUTER_IPV6, 40000, 7, marker(id))));
    add(p, b, "IPv6 router advertisement", false,
        id -> ethernet("33:33:00:00:00:01", b.mac, ETH_IPV6,
            concat(Frames.routerAdvertisement(b.linkLocal(), b.mac), marker(id))));
    add(p, b, "neighbor advert: " + ROUTER_IPV6 + " is-at own MAC", false,
        id -> ethernet("33:33:00:00:00:01", b.mac, ETH_IPV6,
            concat(Frames.neighborAdvertisement(b.linkLocal(), ROUTER_IPV6, b.mac), marker(id))));
    add(p, b, "DHCPv4 server offer (udp sport 67)", false,
        id -> ethernet(BROADCAST, b.mac, ETH_IPV4, Frames.udp4(b.ipv4, "255.255.255.255", 67, 68, marker(id))));
    add(p, b, "802.1Q VLAN 100 tagged frame", false,
        id -> Frames.vlan(ROUTER_MAC, b.mac, 100, ETH_IPV4, Frames.udp4(b.ipv4, ROUTER_IPV4, 40000, 7, marker(id))));
    return p;
  }

  private interface FrameMaker {
    byte[] make(int id);
  }

  private static void add(List<Probe> p, Vm from, String what, boolean expect, FrameMaker f) {
    int id = p.size() + 1;
    p.add(new Probe(id, from, what, f.make(id), expect));
  }

  /**
   * The result table.
   *
   * @param seen ids of the frames that reached the uplink
   * @param drops drop counter packets per tap
   */
  public static String table(List<Probe> probes, Set<Integer> seen, Map<String, Long> drops) {
    StringBuilder s = new StringBuilder();
    s.append(String.format(" %2s  %-8s  %-46s  %-9s  %-9s%n", "#", "from", "frame", "expected", "at uplink"));
    int good = 0;
    for (Probe p : probes) {
      boolean got = seen.contains(p.id());
      boolean ok = got == p.expectDelivered();
      good += ok ? 1 : 0;
      s.append(String.format(" %2d  %-8s  %-46s  %-9s  %-9s  %s%n", p.id(), p.from().name(), p.what(),
          word(p.expectDelivered()), word(got), ok ? "ok" : "UNEXPECTED"));
    }
    s.append(String.format("%ndrop counters (nft table bridge uncloud, chain per tap):%n"));
    for (Map.Entry<String, Long> e : drops.entrySet()) {
      s.append(String.format("  port-%-8s %3d packets dropped%n", e.getKey(), e.getValue()));
    }
    s.append(String.format("%n%d of %d frames as expected%n", good, probes.size()));
    return s.toString();
  }

  /** How many probes came out as expected. */
  public static int asExpected(List<Probe> probes, Set<Integer> seen) {
    int n = 0;
    for (Probe p : probes) {
      n += seen.contains(p.id()) == p.expectDelivered() ? 1 : 0;
    }
    return n;
  }

  private static String word(boolean delivered) {
    return delivered ? "delivered" : "dropped";
  }
}
