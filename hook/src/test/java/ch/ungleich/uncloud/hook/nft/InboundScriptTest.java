package ch.ungleich.uncloud.hook.nft;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.ungleich.uncloud.hook.config.Config;
import ch.ungleich.uncloud.hook.metadata.PolicyBuilder;
import ch.ungleich.uncloud.hook.model.NicPolicy;
import ch.ungleich.uncloud.libvirtxml.DomainReader;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class InboundScriptTest {
  static final String ISSUE =
      "<domain type='qemu'><name>web01</name><uuid>6d696776-6d31-4000-8000-000000000001</uuid><metadata>"
          + "<uc:firewall xmlns:uc='https://ungleich.ch/uncloud/hook/1'><uc:interface mac='52:54:00:aa:bb:01'>"
          + "<uc:ip address='192.0.2.10'/><uc:ip address='2001:db8::10'/>"
          + "<uc:ingress>"
          + "<uc:allow protocol='tcp' port='22' from='198.51.100.0/24'/>"
          + "<uc:allow protocol='tcp' port='80-81'/>"
          + "<uc:allow protocol='udp' port='53' from='2001:db8::/32'/>"
          + "<uc:allow protocol='icmp'/>"
          + "<uc:allow protocol='icmpv6'/>"
          + "<uc:allow from='203.0.113.7'/>"
          + "</uc:ingress><uc:egress>"
          + "<uc:allow protocol='tcp' port='443' to='0.0.0.0/0'/>"
          + "<uc:allow protocol='udp' port='53'/>"
          + "</uc:egress></uc:interface></uc:firewall></metadata>"
          + "<devices><interface type='bridge'><mac address='52:54:00:aa:bb:01'/><source bridge='br0'/>"
          + "<target dev='vnet0'/></interface></devices></domain>";

  static NicPolicy nic(String xml) {
    return PolicyBuilder.build(DomainReader.read(xml), Config.defaults()).nics().get(0);
  }

  @Test
  void theIssueExampleAsElements() {
    List<String> e = InboundScript.elements(nic(ISSUE));
    String b = "bridge uncloud-inbound ";
    String i = "inet uncloud-inbound ";
    assertEquals(List.of(
        b + "delivered { \"vnet0\" }",
        b + "macs { \"vnet0\" . 52:54:00:aa:bb:01 }",
        b + "ingress { \"vnet0\" }",
        b + "own4 { \"vnet0\" . 192.0.2.10 }",
        b + "own6 { \"vnet0\" . 2001:db8::10 }",
        b + "own6 { \"vnet0\" . fe80::5054:ff:feaa:bb01 }",
        i + "in4 { 192.0.2.10 }",
        i + "allow-in4 { 192.0.2.10 . 6 . 22 . 198.51.100.0/24 }",
        i + "allow-in4 { 192.0.2.10 . 6 . 80-81 . 0.0.0.0/0 }",
        i + "allow-in4 { 192.0.2.10 . 1 . 0-65535 . 0.0.0.0/0 }",
        // "any from 203.0.113.7" minus what tcp 80-81 from anywhere already covers
        i + "allow-in4 { 192.0.2.10 . 0 . 0-65535 . 203.0.113.7 }",
        i + "allow-in4 { 192.0.2.10 . 2-5 . 0-65535 . 203.0.113.7 }",
        i + "allow-in4 { 192.0.2.10 . 7-255 . 0-65535 . 203.0.113.7 }",
        i + "allow-in4 { 192.0.2.10 . 6 . 0-79 . 203.0.113.7 }",
        i + "allow-in4 { 192.0.2.10 . 6 . 82-65535 . 203.0.113.7 }",
        i + "in6 { 2001:db8::10 }",
        i + "in6 { fe80::5054:ff:feaa:bb01 }",
        i + "allow-in6 { 2001:db8::10 . 6 . 80-81 . ::/0 }",
        i + "allow-in6 { fe80::5054:ff:feaa:bb01 . 6 . 80-81 . ::/0 }",
        i + "allow-in6 { 2001:db8::10 . 17 . 53 . 2001:db8::/32 }",
        i + "allow-in6 { fe80::5054:ff:feaa:bb01 . 17 . 53 . 2001:db8::/32 }",
        i + "allow-in6 { 2001:db8::10 . 58 . 0-65535 . ::/0 }",
        i + "allow-in6 { fe80::5054:ff:feaa:bb01 . 58 . 0-65535 . ::/0 }",
        b + "egress { \"vnet0\" }",
        i + "out4 { 192.0.2.10 }",
        i + "allow-out4 { 192.0.2.10 . 6 . 443 . 0.0.0.0/0 }",
        i + "allow-out4 { 192.0.2.10 . 17 . 53 . 0.0.0.0/0 }",
        i + "out6 { 2001:db8::10 }",
        i + "out6 { fe80::5054:ff:feaa:bb01 }",
        i + "allow-out6 { 2001:db8::10 . 17 . 53 . ::/0 }",
        i + "allow-out6 { fe80::5054:ff:feaa:bb01 . 17 . 53 . ::/0 }"), e);
  }

  @Test
  void withoutRulesOnlyTheDeliveryFilter() {
    String plain = ISSUE.replaceAll("<uc:ingress>.*</uc:egress>", "");
    assertEquals(List.of("bridge uncloud-inbound delivered { \"vnet0\" }",
        "bridge uncloud-inbound macs { \"vnet0\" . 52:54:00:aa:bb:01 }"), InboundScript.elements(nic(plain)));
    String trusted = ISSUE.replace("<uc:interface mac='52:54:00:aa:bb:01'>", "<uc:interface mac='52:54:00:aa:bb:01' trusted='true'>");
    assertTrue(InboundScript.elements(nic(trusted)).isEmpty());
  }

  /** The rendered text, for a real nft run (InboundLabTest loads it into a namespace). */
  static String script(NicPolicy n) {
    List<String> l = new ArrayList<>(InboundScript.prelude());
    l.addAll(InboundScript.add(InboundScript.elements(n)));
    return String.join("\n", l) + "\n";
  }

  @Test
  void removalAddsFirstSoThatItCannotFail() {
    assertEquals(List.of("add element x { 1 }", "delete element x { 1 }"), InboundScript.remove(List.of("x { 1 }")));
  }

  /** One command per set, sets in the order they first appear, each element once (issue 17 benchmark). */
  @Test
  void elementsAreGroupedPerSet() {
    List<String> e = InboundScript.elements(nic(ISSUE));
    List<String> l = InboundScript.add(e);
    String b = "add element bridge uncloud-inbound ";
    String i = "add element inet uncloud-inbound ";
    assertEquals(List.of(
        b + "delivered { \"vnet0\" }",
        b + "macs { \"vnet0\" . 52:54:00:aa:bb:01 }",
        b + "ingress { \"vnet0\" }",
        b + "own4 { \"vnet0\" . 192.0.2.10 }",
        b + "own6 { \"vnet0\" . 2001:db8::10, \"vnet0\" . fe80::5054:ff:feaa:bb01 }",
        i + "in4 { 192.0.2.10 }",
        i + "allow-in4 { 192.0.2.10 . 6 . 22 . 198.51.100.0/24, 192.0.2.10 . 6 . 80-81 . 0.0.0.0/0, 192.0.2.10 . 1 . 0-65535"
            + " . 0.0.0.0/0, 192.0.2.10 . 0 . 0-65535 . 203.0.113.7, 192.0.2.10 . 2-5 . 0-65535 . 203.0.113.7, 192.0.2.10 . 7-255"
            + " . 0-65535 . 203.0.113.7, 192.0.2.10 . 6 . 0-79 . 203.0.113.7, 192.0.2.10 . 6 . 82-65535 . 203.0.113.7 }",
        i + "in6 { 2001:db8::10, fe80::5054:ff:feaa:bb01 }",
        i + "allow-in6 { 2001:db8::10 . 6 . 80-81 . ::/0, fe80::5054:ff:feaa:bb01 . 6 . 80-81 . ::/0, 2001:db8::10 . 17 . 53"
            + " . 2001:db8::/32, fe80::5054:ff:feaa:bb01 . 17 . 53 . 2001:db8::/32, 2001:db8::10 . 58 . 0-65535 . ::/0,"
            + " fe80::5054:ff:feaa:bb01 . 58 . 0-65535 . ::/0 }",
        b + "egress { \"vnet0\" }",
        i + "out4 { 192.0.2.10 }",
        i + "allow-out4 { 192.0.2.10 . 6 . 443 . 0.0.0.0/0, 192.0.2.10 . 17 . 53 . 0.0.0.0/0 }",
        i + "out6 { 2001:db8::10, fe80::5054:ff:feaa:bb01 }",
        i + "allow-out6 { 2001:db8::10 . 17 . 53 . ::/0, fe80::5054:ff:feaa:bb01 . 17 . 53 . ::/0 }"), l);
    // twice the same elements: the same lines (a set holds an element once)
    List<String> twice = new ArrayList<>(e);
    twice.addAll(e);
    assertEquals(l, InboundScript.add(twice));
    assertEquals(List.of("delete element x { 1, 2 }", "delete element y { 3 }"),
        InboundScript.delete(List.of("x { 1 }", "y { 3 }", "x { 2 }")));
  }

  @Test
  void aBigSetIsAddedInChunks() {
    List<String> e = new ArrayList<>();
    for (int k = 0; k < 2 * InboundScript.CHUNK + 5; k++) {
      e.add("inet uncloud-inbound in4 { 10.0." + (k >> 8) + "." + (k & 255) + " }");
    }
    List<String> l = InboundScript.add(e);
    assertEquals(3, l.size());
    assertTrue(l.get(0).startsWith("add element inet uncloud-inbound in4 { 10.0.0.0, 10.0.0.1, "), l.get(0));
    assertTrue(l.get(2).endsWith(", 10.0.7.212 }"), l.get(2));
    int n = 0;
    for (String x : l) {
      n += x.substring(x.indexOf(" { ") + 3, x.length() - 2).split(", ").length;
    }
    assertEquals(e.size(), n);
  }

  /** An address that moves from one tap to another in one transaction ends up present in either order. */
  @Test
  void removalsComeBeforeAdditions() {
    String a = "inet uncloud-inbound in4 { 192.0.2.10 }";
    InboundScript.Change gives = new InboundScript.Change(List.of(a), List.of(), java.util.Map.of("vnet1", List.of()));
    InboundScript.Change takes = new InboundScript.Change(List.of(), List.of(a), java.util.Map.of("vnet2", List.of(a)));
    List<String> want = List.of("add element " + a, "delete element " + a, "add element " + a);
    assertEquals(want, InboundScript.Change.of(List.of(gives, takes)).lines());
    assertEquals(want, InboundScript.Change.of(List.of(takes, gives)).lines());
    assertEquals(java.util.Map.of("vnet1", List.of(), "vnet2", List.of(a)), InboundScript.Change.of(List.of(takes, gives)).records());
  }

  /** The disjoint boxes cover exactly the union: checked point by point on a small grid. */
  @Test
  void disjointBoxesCoverTheUnionOnce() {
    java.util.Random rnd = new java.util.Random(17);
    for (int round = 0; round < 200; round++) {
      List<InboundScript.Box> boxes = new ArrayList<>();
      for (int k = 0; k < 1 + rnd.nextInt(5); k++) {
        BigInteger[] lo = new BigInteger[3];
        BigInteger[] hi = new BigInteger[3];
        for (int d = 0; d < 3; d++) {
          int a = rnd.nextInt(6);
          int b = a + rnd.nextInt(6 - a);
          lo[d] = BigInteger.valueOf(a);
          hi[d] = BigInteger.valueOf(b);
        }
        boxes.add(new InboundScript.Box(lo, hi));
      }
      List<InboundScript.Box> out = InboundScript.disjoint(boxes);
      for (int x = 0; x < 6; x++) {
        for (int y = 0; y < 6; y++) {
          for (int z = 0; z < 6; z++) {
            int[] p = {x, y, z};
            long in = boxes.stream().filter(b -> contains(b, p)).count();
            long covered = out.stream().filter(b -> contains(b, p)).count();
            assertEquals(in > 0 ? 1 : 0, covered, "round " + round);
          }
        }
      }
    }
  }

  static boolean contains(InboundScript.Box b, int[] p) {
    for (int d = 0; d < 3; d++) {
      if (b.lo()[d].intValue() > p[d] || b.hi()[d].intValue() < p[d]) {
        return false;
      }
    }
    return true;
  }
}
