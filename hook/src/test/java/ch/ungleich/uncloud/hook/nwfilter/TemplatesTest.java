package ch.ungleich.uncloud.hook.nwfilter;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.ungleich.uncloud.hook.config.Config;
import ch.ungleich.uncloud.hook.metadata.PolicyBuilder;
import ch.ungleich.uncloud.libvirtxml.DomainReader;
import java.io.IOException;
import java.io.StringReader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import javax.xml.parsers.DocumentBuilderFactory;
import org.junit.jupiter.api.Test;
import org.w3c.dom.Element;
import org.w3c.dom.NamedNodeMap;
import org.w3c.dom.Node;
import org.xml.sax.InputSource;

/**
 * The bundled filters: complete, consistent with what {@link NwfilterBackend} passes them, written the
 * way libvirt prints them back (so {@code nwfilter install} can say "unchanged"), and instantiated with
 * libvirt's paired-iterator rule to the rules we mean.
 */
class TemplatesTest {
  static final Path SRC = Path.of("../nwfilter-templates/src/main/resources/nwfilter");
  static final Pattern VAR = Pattern.compile("\\$([A-Z0-9_]+)(\\[@(\\d+)\\])?");

  static Map<String, Element> filters() throws Exception {
    Map<String, Element> out = new LinkedHashMap<>();
    for (Templates.Template t : Templates.all()) {
      out.put(t.name(), parse(t.xml()));
    }
    return out;
  }

  static Element parse(String xml) throws Exception {
    return DocumentBuilderFactory.newInstance().newDocumentBuilder()
        .parse(new InputSource(new StringReader(xml))).getDocumentElement();
  }

  static List<Element> children(Element e, String name) {
    List<Element> out = new ArrayList<>();
    for (Node c = e.getFirstChild(); c != null; c = c.getNextSibling()) {
      if (c instanceof Element x && (name == null || x.getTagName().equals(name))) {
        out.add(x);
      }
    }
    return out;
  }

  @Test
  void listMatchesTheDirectoryAndReferencesComeFirst() throws Exception {
    Set<String> files = new TreeSet<>();
    try (Stream<Path> s = Files.list(SRC)) {
      s.map(p -> p.getFileName().toString()).filter(n -> n.endsWith(".xml"))
          .forEach(n -> files.add(n.substring(0, n.length() - 4)));
    }
    Map<String, Element> f = filters();
    assertEquals(files, new TreeSet<>(f.keySet()));
    List<String> order = new ArrayList<>(f.keySet());
    for (Map.Entry<String, Element> e : f.entrySet()) {
      for (Element ref : children(e.getValue(), "filterref")) {
        String target = ref.getAttribute("filter");
        assertTrue(f.containsKey(target), e.getKey() + " references unknown " + target);
        assertTrue(order.indexOf(target) < order.indexOf(e.getKey()), target + " must be defined before " + e.getKey());
      }
    }
    for (String top : List.of(NwfilterBackend.CLEAN_TRAFFIC, NwfilterBackend.CLEAN_TRAFFIC_NO_DHCP,
        NwfilterBackend.MAC_ONLY)) {
      assertTrue(f.containsKey(top), top);
    }
  }

  @Test
  void writtenAsLibvirtPrintsThem() throws Exception {
    for (Map.Entry<String, Element> e : filters().entrySet()) {
      Element f = e.getValue();
      String chain = f.getAttribute("chain");
      assertTrue(chain.matches("(root|mac|stp|vlan|arp|rarp|ipv4|ipv6)(-[a-z]+)?") && chain.length() <= 12,
          e.getKey() + ": chain '" + chain + "' (libvirt: known prefix, at most 12 characters)");
      if (!chain.equals("root")) {
        assertFalse(f.getAttribute("priority").isEmpty(), e.getKey() + ": explicit chain priority");
      }
      // traffic to the VM (direction in) only in the delivery filter and the ingress filters
      String direction = e.getKey().equals("uncloud-delivery") || e.getKey().startsWith("uncloud-ingress") ? "in" : "out";
      for (Element rule : children(f, "rule")) {
        assertEquals(direction, rule.getAttribute("direction"), e.getKey());
        assertFalse(rule.getAttribute("priority").isEmpty(), e.getKey() + ": explicit rule priority");
        for (Element match : children(rule, null)) {
          String pt = match.getAttribute("protocoltype");
          assertTrue(pt.isEmpty() || pt.equals("0x800"), e.getKey() + ": libvirt prints protocoltype as 0x800");
        }
      }
      for (Element c : children(f, null)) {
        assertTrue(Set.of("rule", "filterref").contains(c.getTagName()), e.getKey() + ": <" + c.getTagName() + ">");
      }
      if (!chain.equals("root")) {
        // ebtables-nft (Debian 12) ends a chain libvirt creates in "accept": every sub-chain must end
        // with its own verdict for all frames, a rule without a match at the highest priority
        List<Element> rules = children(f, "rule");
        Element last = rules.get(rules.size() - 1);
        int max = rules.stream().mapToInt(r -> Integer.parseInt(r.getAttribute("priority"))).max().orElseThrow();
        assertEquals(max, Integer.parseInt(last.getAttribute("priority")), e.getKey());
        assertTrue(children(last, null).isEmpty() && Set.of("drop", "return").contains(last.getAttribute("action"))
            && rules.stream().filter(r -> r.getAttribute("priority").equals(last.getAttribute("priority"))).count() == 1,
            e.getKey() + ": chain must end with one match-all drop or return");
      }
    }
  }

  /**
   * libvirt's iptables layer adds the reverse rule (with the other direction's chain) to every rule
   * without a {@code state}: a drop would drop both ways and a stateless accept would accept the
   * reverse without state. So every iptables-level rule of ours names its state, except the allows,
   * whose reverse is the stateful "established, reply direction" we want.
   */
  @Test
  void iptablesRulesNameTheirStateExceptTheStatefulAllows() throws Exception {
    Set<String> ebtables = Set.of("mac", "ip", "ipv6", "arp", "rarp", "vlan", "stp");
    int allows = 0;
    for (Map.Entry<String, Element> e : filters().entrySet()) {
      for (Element rule : children(e.getValue(), "rule")) {
        for (Element m : children(rule, null)) {
          if (ebtables.contains(m.getTagName())) {
            continue;
          }
          boolean allow = rule.getAttribute("action").equals("accept") && m.getAttribute("state").isEmpty()
              && (m.getAttribute("srcipaddr") + m.getAttribute("dstipaddr")).startsWith("$");
          if (allow) {
            allows++;
            assertEquals(e.getKey().equals("uncloud-ingress") ? "in" : "out", rule.getAttribute("direction"));
          } else {
            assertFalse(m.getAttribute("state").isEmpty(), e.getKey() + ": <" + m.getTagName() + "> without state");
          }
        }
      }
    }
    assertEquals(16, allows, "4 kinds x 2 families x 2 directions");
  }

  /** Every $VARIABLE a filter uses, following its filterrefs. */
  static Set<String> variables(Map<String, Element> f, String name) {
    Set<String> out = new TreeSet<>();
    Element e = f.get(name);
    for (Element rule : children(e, "rule")) {
      for (Element m : children(rule, null)) {
        NamedNodeMap a = m.getAttributes();
        for (int i = 0; i < a.getLength(); i++) {
          Matcher x = VAR.matcher(a.item(i).getNodeValue());
          while (x.find()) {
            out.add(x.group(1));
          }
        }
      }
    }
    for (Element ref : children(e, "filterref")) {
      out.addAll(variables(f, ref.getAttribute("filter")));
    }
    return out;
  }

  static FilterRef expected(String metadata, String conf) {
    String xml = NwfilterBackendTest.domain(metadata, "");
    return NwfilterBackend.expected(
        PolicyBuilder.build(DomainReader.read(xml), Config.parse("backend = nwfilter\n" + conf, "t")).nics().get(0));
  }

  @Test
  void backendPassesExactlyTheVariablesEachFilterUses() throws Exception {
    Map<String, Element> f = filters();
    for (FilterRef ref : List.of(
        expected(NwfilterBackendTest.ips("192.0.2.10"), ""),
        expected(NwfilterBackendTest.ips("192.0.2.10"), "dhcp_client = no\n"),
        expected(null, "unlisted = mac-only\n"),
        expected(NwfilterBackendTest.ips("192.0.2.10").replace("</uc:interface>", "<uc:ingress/></uc:interface>"), ""),
        expected(NwfilterBackendTest.ips("192.0.2.10"), "ingress = deny\ndhcp_client = no\n"),
        expected(NwfilterBackendTest.ips("192.0.2.10").replace("</uc:interface>", "<uc:egress/></uc:interface>"), ""),
        expected(NwfilterBackendTest.ips("192.0.2.10").replace("</uc:interface>",
            "<uc:ingress><uc:allow protocol='tcp' port='22'/></uc:ingress><uc:egress/></uc:interface>"), "dhcp_client = no\n"))) {
      Set<String> passed = new TreeSet<>();
      ref.params().forEach(p -> passed.add(p.name()));
      assertEquals(variables(f, ref.filter()), passed, ref.filter());
    }
  }

  /**
   * libvirt's instantiation of one rule: variables with the same iterator id advance together (the
   * i-th IPV4 with the i-th IPV4_PREFIX), a variable without an iterator is one value.
   */
  static List<Map<String, String>> instantiate(Element match, FilterRef ref) {
    Map<String, String> attrs = new LinkedHashMap<>();
    NamedNodeMap a = match.getAttributes();
    for (int i = 0; i < a.getLength(); i++) {
      attrs.put(a.item(i).getNodeName(), a.item(i).getNodeValue());
    }
    int n = 1;
    for (String v : attrs.values()) {
      Matcher x = VAR.matcher(v);
      if (x.matches() && x.group(2) != null) {
        int len = ref.values(x.group(1)).size();
        assertTrue(n == 1 || len == n, "paired lists of different length");
        n = len;
      }
    }
    List<Map<String, String>> out = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      Map<String, String> r = new LinkedHashMap<>();
      for (Map.Entry<String, String> e : attrs.entrySet()) {
        Matcher x = VAR.matcher(e.getValue());
        if (x.matches()) {
          List<String> values = ref.values(x.group(1));
          assertFalse(values.isEmpty(), "no value for " + x.group(1));
          r.put(e.getKey(), x.group(2) == null ? values.get(0) : values.get(i));
        } else {
          r.put(e.getKey(), e.getValue());
        }
      }
      out.add(r);
    }
    return out;
  }

  static List<String> rules(Map<String, Element> f, String filter, FilterRef ref) {
    List<String> out = new ArrayList<>();
    for (Element rule : children(f.get(filter), "rule")) {
      List<Element> m = children(rule, null);
      if (m.isEmpty()) {
        out.add(rule.getAttribute("action"));
        continue;
      }
      for (Map<String, String> r : instantiate(m.get(0), ref)) {
        out.add(rule.getAttribute("action") + " " + m.get(0).getTagName() + " " + r);
      }
    }
    return out;
  }

  @Test
  void pairedListsInstantiateOneRulePerPrefix() throws Exception {
    Map<String, Element> f = filters();
    FilterRef ref = expected(NwfilterBackendTest.ips("192.0.2.10", "198.51.100.0/24", "2001:db8:1234::/64"), "");
    assertEquals(List.of(
        "drop ip {srcipaddr=0.0.0.0}",
        "return ip {srcipaddr=192.0.2.10, srcipmask=32}",
        "return ip {srcipaddr=198.51.100.0, srcipmask=24}",
        "drop"), rules(f, "uncloud-no-ip-spoofing", ref));
    List<String> v6 = rules(f, "uncloud-no-ipv6-spoofing", ref);
    assertTrue(v6.contains("return ipv6 {srcipaddr=2001:db8:1234::, srcipmask=64}"), v6.toString());
    assertTrue(v6.contains("return ipv6 {srcipaddr=fe80::5054:ff:feaa:bb01, srcipmask=128}"), v6.toString());
    List<String> arp = rules(f, "uncloud-no-arp-ip-spoofing", ref);
    assertTrue(arp.contains("return arp {arpsrcipaddr=198.51.100.0, arpsrcipmask=24, opcode=Reply,"
        + " protocoltype=0x800}"), arp.toString());
    assertEquals(List.of("return mac {srcmacaddr=52:54:00:aa:bb:01}", "drop"),
        rules(f, "uncloud-no-mac-spoofing", ref));
    // a NIC without IPv4: the placeholder 0.0.0.0/32 is the only IPv4 rule, after the 0.0.0.0 drop
    FilterRef v6only = expected(NwfilterBackendTest.ips("2001:db8::10"), "");
    assertEquals(List.of("drop ip {srcipaddr=0.0.0.0}", "return ip {srcipaddr=0.0.0.0, srcipmask=32}", "drop"),
        rules(f, "uncloud-no-ip-spoofing", v6only));
  }

  @Test
  void allowsInstantiateOneRulePerAllowAndPlaceholdersAfterTheirDrop() throws Exception {
    Map<String, Element> f = filters();
    FilterRef ref = expected(NwfilterBackendTest.ips("192.0.2.10", "2001:db8::10").replace("</uc:interface>",
        "<uc:ingress><uc:allow protocol='tcp' port='22' from='198.51.100.0/24'/><uc:allow protocol='tcp' port='80-81'/>"
            + "<uc:allow protocol='udp' port='53' from='2001:db8::/32'/><uc:allow protocol='icmp'/>"
            + "<uc:allow from='203.0.113.7'/></uc:ingress></uc:interface>"), "");
    assertEquals("uncloud-clean-traffic-in", ref.filter());
    List<String> in = rules(f, "uncloud-ingress", ref);
    // the allows, in metadata order per protocol and family
    assertTrue(in.contains("accept tcp {dstportend=22, dstportstart=22, srcipaddr=198.51.100.0, srcipmask=24}"), in.toString());
    assertTrue(in.contains("accept tcp {dstportend=81, dstportstart=80, srcipaddr=0.0.0.0, srcipmask=0}"), in.toString());
    assertTrue(in.contains("accept udp-ipv6 {dstportend=53, dstportstart=53, srcipaddr=2001:db8::, srcipmask=32}"), in.toString());
    assertTrue(in.contains("accept icmp {srcipaddr=0.0.0.0, srcipmask=0}"), in.toString());
    assertTrue(in.contains("accept all {srcipaddr=203.0.113.7, srcipmask=32}"), in.toString());
    // empty lists: the placeholder, which the drop of every source 224.0.0.0 / ff00:: before it makes inert
    assertTrue(in.contains("accept udp {dstportend=65535, dstportstart=0, srcipaddr=224.0.0.0, srcipmask=32}"), in.toString());
    assertTrue(in.contains("accept icmpv6 {srcipaddr=ff00::, srcipmask=128}"), in.toString());
    assertTrue(in.indexOf("drop all {srcipaddr=224.0.0.0, state=NONE}") < in.indexOf("accept udp {dstportend=65535,"
        + " dstportstart=0, srcipaddr=224.0.0.0, srcipmask=32}"), in.toString());
    assertTrue(in.indexOf("drop all-ipv6 {srcipaddr=ff00::, state=NONE}") < in.indexOf("accept icmpv6 {srcipaddr=ff00::,"
        + " srcipmask=128}"), in.toString());
    assertEquals(List.of("tcp 198.51.100.0/24 22", "tcp any 80-81", "icmp any", "any 203.0.113.7/32", "tcp any 80-81",
        "udp 2001:db8::/32 53"),
        NwfilterBackend.allows(ref, "IN_"));
    // without uc:egress no OUT_ parameters (uncloud-egress is not referenced)
    assertTrue(ref.values("OUT_ANY4").isEmpty());
  }

  @Test
  void withUuidAddsTheElementLibvirtNeedsToRedefine() throws Exception {
    Templates.Template t = Templates.all().get(0);
    String xml = t.withUuid("0724dcaa-0cd4-4da1-b062-9f9f228506eb");
    assertEquals("0724dcaa-0cd4-4da1-b062-9f9f228506eb", FilterXml.uuid(xml));
    assertTrue(FilterXml.same(t.xml(), xml));
    assertNotNull(parse(xml));
  }

  @Test
  void canonicalFormIgnoresWhatLibvirtChanges() throws IOException {
    String ours = "<!-- c --><filter name='x' chain='mac' priority='-800'>\n  <!-- own -->\n"
        + "  <rule action='return' direction='out' priority='500'>\n    <mac srcmacaddr='$MAC'/>\n  </rule>\n</filter>";
    String libvirts = "<filter name='x' chain='mac' priority='-800'>\n  <uuid>0724dcaa-0cd4-4da1-b062-9f9f228506eb"
        + "</uuid>\n  <rule priority='500' action='return' direction='out'>\n    <mac srcmacaddr='$MAC'/>\n"
        + "  </rule>\n</filter>\n";
    assertTrue(FilterXml.same(ours, libvirts));
    assertFalse(FilterXml.same(ours, libvirts.replace("$MAC", "$IP")));
    assertFalse(FilterXml.same(ours, libvirts.replace("priority='500'", "priority='400'")));
  }
}
