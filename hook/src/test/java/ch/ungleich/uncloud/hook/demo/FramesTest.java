package ch.ungleich.uncloud.hook.demo;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

class FramesTest {
  private static int u16(byte[] b, int at) {
    return (b[at] & 0xff) << 8 | (b[at + 1] & 0xff);
  }

  private static byte[] slice(byte[] b, int from, int to) {
    byte[] out = new byte[to - from];
    System.arraycopy(b, from, out, 0, out.length);
    return out;
  }

  @Test
  void checksumOfRfc1071Example() {
    // RFC 1071 section 3: 0001 f203 f4f5 f6f7 sums to ddf2 (before the complement)
    byte[] data = {0x00, 0x01, (byte) 0xf2, 0x03, (byte) 0xf4, (byte) 0xf5, (byte) 0xf6, (byte) 0xf7};
    assertEquals(~0xddf2 & 0xffff, Frames.checksum(data, 0, data.length, 0));
  }

  @Test
  void ipv4HeaderChecksumVerifiesToZero() {
    byte[] p = Frames.ipv4Packet("192.0.2.11", "192.0.2.1", 17, new byte[3]);
    assertEquals(0x45, p[0] & 0xff);
    assertEquals(23, u16(p, 2));
    assertEquals(0, Frames.checksum(p, 0, 20, 0));
    assertArrayEquals(new byte[] {(byte) 192, 0, 2, 11}, slice(p, 12, 16));
  }

  @Test
  void ipv4HeaderChecksumKnownValue() {
    // 4500 0073 0000 4000 4011 xxxx c000 0201 c000 0202: the 16-bit sum is 0x24987, folded 0x4989,
    // complemented 0xb676 (worked by hand)
    byte[] p = Frames.ipv4Packet("192.0.2.1", "192.0.2.2", 17, new byte[0x73 - 20]);
    assertEquals(0x4000, u16(p, 6));
    assertEquals(64, p[8] & 0xff);
    assertEquals(0xb676, u16(p, 10));
  }

  @Test
  void udp4ChecksumVerifiesWithPseudoHeader() {
    byte[] p = Frames.udp4("192.0.2.11", "192.0.2.1", 40000, 7, "hello".getBytes());
    byte[] udp = slice(p, 20, p.length);
    assertEquals(13, u16(udp, 4));
    byte[] pseudo = {(byte) 192, 0, 2, 11, (byte) 192, 0, 2, 1, 0, 17, 0, 13};
    assertEquals(0, Frames.checksum(Frames.concat(pseudo, udp), 0, pseudo.length + udp.length, 0));
  }

  @Test
  void udp6AndIcmp6ChecksumsVerify() {
    byte[] p = Frames.udp6("2001:db8::11", "2001:db8::1", 40000, 7, "x".getBytes());
    assertEquals(0x60, p[0] & 0xff);
    assertEquals(9, u16(p, 4));
    assertEquals(17, p[6]);
    assertEquals(0, Frames.checksum(Frames.concat(pseudo6(p, 17), slice(p, 40, p.length)), 0, 40 + p.length - 40, 0));

    byte[] ra = Frames.routerAdvertisement("fe80::5054:ff:fe00:2", "52:54:00:00:00:02");
    assertEquals(58, ra[6]);
    assertEquals(255, ra[7] & 0xff);
    assertEquals(134, ra[40] & 0xff);
    assertEquals(0, Frames.checksum(Frames.concat(pseudo6(ra, 58), slice(ra, 40, ra.length)), 0, ra.length, 0));

    byte[] na = Frames.neighborAdvertisement("fe80::5054:ff:fe00:2", "2001:db8::1", "52:54:00:00:00:02");
    assertEquals(136, na[40] & 0xff);
    assertArrayEquals(Frames.ipv6("2001:db8::1"), slice(na, 48, 64));
    assertEquals(0, Frames.checksum(Frames.concat(pseudo6(na, 58), slice(na, 40, na.length)), 0, na.length, 0));
  }

  /** Source, destination, upper-layer length, next header: RFC 8200 section 8.1. */
  private static byte[] pseudo6(byte[] packet, int next) {
    int len = packet.length - 40;
    byte[] ph = new byte[40];
    System.arraycopy(packet, 8, ph, 0, 32);
    ph[34] = (byte) (len >> 8);
    ph[35] = (byte) len;
    ph[39] = (byte) next;
    return ph;
  }

  @Test
  void arpAndEthernetLayout() {
    byte[] arp = Frames.arp(2, "52:54:00:00:00:02", "192.0.2.1", "ff:ff:ff:ff:ff:ff", "192.0.2.1");
    assertEquals(28, arp.length);
    assertEquals(1, u16(arp, 0));
    assertEquals(0x0800, u16(arp, 2));
    assertEquals(2, u16(arp, 6));
    byte[] f = Frames.ethernet(Frames.BROADCAST, "52:54:00:00:00:02", Frames.ETH_ARP, arp);
    assertEquals(42, f.length);
    assertArrayEquals(Frames.mac("52:54:00:00:00:02"), slice(f, 6, 12));
    assertEquals(0x0806, u16(f, 12));
  }

  @Test
  void vlanTag() {
    byte[] f = Frames.vlan("52:54:00:00:00:fe", "52:54:00:00:00:02", 100, Frames.ETH_IPV4, new byte[] {1});
    assertEquals(0x8100, u16(f, 12));
    assertEquals(100, u16(f, 14));
    assertEquals(0x0800, u16(f, 16));
  }

  @Test
  void ipv6Literals() {
    assertArrayEquals(
        new byte[] {0x20, 0x01, 0x0d, (byte) 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x11}, Frames.ipv6("2001:db8::11"));
    assertArrayEquals(new byte[16], Frames.ipv6("::"));
    assertEquals(0x02, Frames.ipv6("ff02::1")[1]);
    assertEquals(1, Frames.ipv6("ff02::1")[15]);
    assertArrayEquals(Frames.ipv6("1:2:3:4:5:6:7:8"), Frames.ipv6("1:2:3:4:5:6:7:8"));
    assertThrows(IllegalArgumentException.class, () -> Frames.ipv6("1:2:3"));
    assertThrows(IllegalArgumentException.class, () -> Frames.ipv6("1::2::3"));
    assertThrows(IllegalArgumentException.class, () -> Frames.ipv4("192.0.2.300"));
    assertThrows(IllegalArgumentException.class, () -> Frames.mac("52:54:00"));
  }

  @Test
  void markerRoundTrip() {
    byte[] f = Frames.ethernet(Frames.BROADCAST, "52:54:00:00:00:01", Frames.ETH_IPV4,
        Frames.udp4("192.0.2.11", "192.0.2.1", 1, 2, Frames.marker(7)));
    assertEquals(7, Frames.markerId(f, f.length));
    assertEquals(-1, Frames.markerId(f, f.length - 2));
    assertEquals(-1, Frames.markerId(new byte[60], 60));
  }

  @Test
  void scenarioUsesDocumentationAddressesAndDistinctMarkers() {
    List<DemoScenario.Probe> probes = DemoScenario.probes();
    Set<Integer> ids = new HashSet<>();
    for (DemoScenario.Probe p : probes) {
      assertEquals(p.id(), Frames.markerId(p.frame(), p.frame().length), p.what());
      ids.add(p.id());
    }
    assertEquals(probes.size(), ids.size());
    assertEquals("fe80::5054:ff:fe00:2", DemoScenario.VM2.linkLocal());
    for (DemoScenario.Vm vm : List.of(DemoScenario.VM1, DemoScenario.VM2)) {
      assertEquals(true, vm.ipv4().startsWith("192.0.2."));
      assertEquals(true, vm.ipv6().startsWith("2001:db8:"));
    }
  }

  @Test
  void tableCountsWhatIsAsExpected() {
    List<DemoScenario.Probe> probes = DemoScenario.probes();
    Set<Integer> seen = Set.of(1, 2, 3, 4, 5, 6);
    String t = DemoScenario.table(probes, seen, Map.of("vnet1", 7L));
    assertEquals(probes.size() - 1, DemoScenario.asExpected(probes, seen));
    assertEquals(true, t.contains("UNEXPECTED"), t);
    assertEquals(true, t.contains(probes.size() - 1 + " of " + probes.size() + " frames as expected"), t);
    assertEquals(true, t.matches("(?s).*port-vnet1 +7 packets dropped.*"), t);
  }
}
