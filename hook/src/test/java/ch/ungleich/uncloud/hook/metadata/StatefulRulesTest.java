package ch.ungleich.uncloud.hook.metadata;

import static ch.ungleich.uncloud.hook.metadata.PolicyBuilderTest.MAC1;
import static ch.ungleich.uncloud.hook.metadata.PolicyBuilderTest.build;
import static ch.ungleich.uncloud.hook.metadata.PolicyBuilderTest.domain;
import static ch.ungleich.uncloud.hook.metadata.PolicyBuilderTest.nic;
import static ch.ungleich.uncloud.hook.metadata.PolicyBuilderTest.reject;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.ungleich.uncloud.hook.model.Allow;
import ch.ungleich.uncloud.hook.model.NicPolicy;
import ch.ungleich.uncloud.hook.model.Protocol;
import ch.ungleich.uncloud.hook.model.StatefulRules;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** uc:ingress / uc:egress (issue 17): parsing, defaults, every refusal. */
class StatefulRulesTest {
  static final String ISSUE_RULES =
      "<uc:ingress>"
          + "<uc:allow protocol='tcp' port='22' from='198.51.100.0/24'/>"
          + "<uc:allow protocol='tcp' port='80-81'/>"
          + "<uc:allow protocol='udp' port='53' from='2001:db8::/32'/>"
          + "<uc:allow protocol='icmp'/>"
          + "<uc:allow protocol='icmpv6'/>"
          + "<uc:allow from='203.0.113.7'/>"
          + "</uc:ingress>"
          + "<uc:egress>"
          + "<uc:allow protocol='tcp' port='443' to='0.0.0.0/0'/>"
          + "<uc:allow protocol='udp' port='53'/>"
          + "</uc:egress>";

  static String withRules(String rules, String attrs) {
    return domain("<uc:interface mac='" + MAC1 + "'" + attrs + "><uc:ip address='192.0.2.10'/>"
        + "<uc:ip address='2001:db8::10'/>" + rules + "</uc:interface>", nic("bridge", MAC1, "vnet0"));
  }

  static NicPolicy nic0(String xml) {
    return build(xml).nics().get(0);
  }

  @Test
  void theIssueExample() {
    StatefulRules r = nic0(withRules(ISSUE_RULES, "")).rules();
    assertTrue(r.ingress());
    assertTrue(r.egress());
    assertEquals(6, r.in().size());
    Allow ssh = r.in().get(0);
    assertEquals(Protocol.TCP, ssh.protocol());
    assertEquals("22", ssh.ports());
    assertEquals("198.51.100.0/24", ssh.peer().toString());
    assertTrue(ssh.covers(false));
    assertFalse(ssh.covers(true));
    assertEquals("80-81", r.in().get(1).ports());
    assertNull(r.in().get(1).peer());
    assertTrue(r.in().get(1).covers(false) && r.in().get(1).covers(true));
    assertFalse(r.in().get(3).covers(true), "icmp is IPv4 only");
    assertFalse(r.in().get(4).covers(false), "icmpv6 is IPv6 only");
    Allow any = r.in().get(5);
    assertEquals(Protocol.ANY, any.protocol());
    assertEquals("0-65535", any.ports());
    assertEquals("<uc:allow from=\"203.0.113.7\"/>", any.text());
    assertEquals(2, r.out().size());
    assertEquals("0.0.0.0/0", r.out().get(0).peer().toString());
  }

  @Test
  void absentMeansUnfilteredAndEmptyMeansOnlyReplies() {
    assertEquals(StatefulRules.NONE, nic0(withRules("", "")).rules());
    StatefulRules empty = nic0(withRules("<uc:ingress/>", "")).rules();
    assertTrue(empty.ingress());
    assertTrue(empty.in().isEmpty());
    assertFalse(empty.egress());
  }

  @Test
  void hostSettingIngressDenyIsAnEmptyIngressForNicsWithMetadata() {
    String conf = "ingress = deny\n";
    StatefulRules r = PolicyBuilderTest.build(withRules("", ""), conf).nics().get(0).rules();
    assertTrue(r.ingress());
    assertTrue(r.in().isEmpty());
    // an unlisted NIC has no metadata: not affected
    NicPolicy unlisted = PolicyBuilderTest.build(domain(null, nic("bridge", MAC1, "vnet0")), conf).nics().get(0);
    assertFalse(unlisted.rules().any());
    // trusted: no inbound filtering either
    NicPolicy trusted = PolicyBuilderTest.build(withRules("<uc:ingress/>", " trusted='true'"), conf).nics().get(0);
    assertFalse(trusted.rules().any());
  }

  @Test
  void nwfilterBackendTakesTheRulesToo() {
    StatefulRules r = PolicyBuilderTest.build(withRules("<uc:ingress/>", ""), "backend = nwfilter\n").nics().get(0).rules();
    assertTrue(r.ingress());
    assertFalse(r.egress());
    ch.ungleich.uncloud.hook.config.Config c = ch.ungleich.uncloud.hook.config.Config.parse("backend = nwfilter\ningress = deny\n", "c");
    assertTrue(c.ingressDeny());
    assertTrue(PolicyBuilderTest.build(withRules("", ""), "backend = nwfilter\ningress = deny\n").nics().get(0).rules().ingress());
    assertEquals(StatefulRules.NONE, PolicyBuilderTest.build(withRules("", ""), "backend = nwfilter\n").nics().get(0).rules());
  }

  static String assertThrowsInvalid(org.junit.jupiter.api.function.Executable e) {
    return org.junit.jupiter.api.Assertions.assertThrows(ch.ungleich.uncloud.hook.UncloudException.class, e).getMessage();
  }

  @Test
  void trustedNicsAreNotFilteredButTheirRulesAreChecked() {
    assertFalse(nic0(withRules(ISSUE_RULES, " trusted='true'")).rules().any());
    String m = reject(withRules("<uc:ingress><uc:allow protocol='sctp'/></uc:ingress>", " trusted='true'"));
    assertTrue(m.contains("unknown protocol"), m);
  }

  @ParameterizedTest
  @CsvSource(
      delimiter = '|',
      value = {
        "<uc:ingress><uc:allow protocol='sctp'/></uc:ingress>|ingress rule <uc:allow protocol=\"sctp\"/>: unknown protocol 'sctp'",
        "<uc:ingress><uc:allow protocol='TCP'/></uc:ingress>|unknown protocol 'TCP'",
        "<uc:ingress><uc:allow port='22'/></uc:ingress>|a port needs protocol=\"tcp\" or \"udp\"",
        "<uc:ingress><uc:allow protocol='icmp' port='8'/></uc:ingress>|a port needs protocol",
        "<uc:ingress><uc:allow protocol='tcp' port='0'/></uc:ingress>|ports are 1 to 65535",
        "<uc:ingress><uc:allow protocol='tcp' port='65536'/></uc:ingress>|ports are 1 to 65535",
        "<uc:ingress><uc:allow protocol='udp' port='0-10'/></uc:ingress>|ports are 1 to 65535",
        "<uc:ingress><uc:allow protocol='tcp' port='81-80'/></uc:ingress>|port range 81-80 is reversed",
        "<uc:ingress><uc:allow protocol='tcp' port='http'/></uc:ingress>|port 'http' is not a port or a lo-hi range",
        "<uc:ingress><uc:allow protocol='tcp' port='1-2-3'/></uc:ingress>|is not a port",
        "<uc:ingress><uc:allow from='198.51.100.1/24'/></uc:ingress>|from: '198.51.100.1/24' has host bits set; the network is 198.51.100.0/24",
        "<uc:ingress><uc:allow from='example.org'/></uc:ingress>|from: 'example.org' is not an IPv4 or IPv6 address",
        "<uc:ingress><uc:allow protocol='icmp' from='2001:db8::/32'/></uc:ingress>|from 2001:db8::/32 is an IPv6 prefix, but icmp is IPv4 only",
        "<uc:ingress><uc:allow protocol='icmpv6' from='192.0.2.0/24'/></uc:ingress>|but icmpv6 is IPv6 only",
        "<uc:egress><uc:allow protocol='tcp' port='443' to='2001:db8::1/32'/></uc:egress>|egress rule <uc:allow protocol=\"tcp\" port=\"443\" to=\"2001:db8::1/32\"/>: to: ",
        "<uc:egress><uc:allow protocol='icmp' to='2001:db8::/32'/></uc:egress>|egress rule",
      })
  void refusalsNameDomainNicMacAndTheRule(String rules, String expected) {
    String m = reject(withRules(rules, ""));
    assertTrue(m.startsWith("web01 nic0 " + MAC1 + ": "), m);
    assertTrue(m.contains(expected), m);
  }

  @Test
  void wrongAttributeKindIsRefusedWithTheRule() {
    String m = reject(withRules("<uc:ingress><uc:allow to='192.0.2.1'/></uc:ingress>", ""));
    assertEquals("web01 nic0 " + MAC1 + ": ingress rule <uc:allow to=\"192.0.2.1\"/>: ingress rules take 'from'"
        + " (the remote side), not 'to'", m);
    m = reject(withRules("<uc:egress><uc:allow protocol='tcp' from='192.0.2.1'/></uc:egress>", ""));
    assertTrue(m.contains("egress rule <uc:allow protocol=\"tcp\" from=\"192.0.2.1\"/>: egress rules take 'to'"), m);
  }

  @Test
  void atMostMaxRulesPerDirection() {
    StringBuilder ok = new StringBuilder("<uc:ingress>");
    for (int i = 1; i <= StatefulRules.MAX_RULES; i++) {
      ok.append("<uc:allow protocol='tcp' port='").append(i).append("'/>");
    }
    assertEquals(StatefulRules.MAX_RULES, nic0(withRules(ok + "</uc:ingress>", "")).rules().in().size());
    String m = reject(withRules(ok + "<uc:allow protocol='udp' port='1'/></uc:ingress>", ""));
    assertTrue(m.contains("uc:ingress has 65 rules; at most 64"), m);
  }

  @Test
  void entriesForNicsNotAttachedYetAreCheckedToo() {
    String xml = domain("<uc:interface mac='52:54:00:aa:bb:09'><uc:ingress><uc:allow protocol='tcp' port='0'/>"
        + "</uc:ingress></uc:interface>", nic("bridge", MAC1, "vnet0"));
    String m = reject(xml);
    assertTrue(m.startsWith("web01 metadata 52:54:00:aa:bb:09: ingress rule"), m);
  }

  @Test
  void deliveryFilterIsForFilteredNicsOnly() {
    assertTrue(nic0(withRules("", "")).delivered());
    assertFalse(nic0(withRules("", " trusted='true'")).delivered());
    List<NicPolicy> unlisted = PolicyBuilderTest.build(domain(null, nic("bridge", MAC1, "vnet0")), "unlisted = allow\n").nics();
    assertFalse(unlisted.get(0).delivered());
    assertTrue(PolicyBuilderTest.build(domain(null, nic("bridge", MAC1, "vnet0")), "unlisted = mac-only\n").nics().get(0).delivered());
  }
}
