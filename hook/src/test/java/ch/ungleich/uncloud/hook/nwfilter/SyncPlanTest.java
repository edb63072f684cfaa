package ch.ungleich.uncloud.hook.nwfilter;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.ungleich.uncloud.hook.config.Config;
import java.util.List;
import org.junit.jupiter.api.Test;

class SyncPlanTest {
  static final String XML = """
      <domain type='qemu'>
        <name>web01</name>
        <uuid>6d696776-6d31-4000-8000-000000000001</uuid>
        <metadata>
          <uc:firewall xmlns:uc="https://ungleich.ch/uncloud/hook/1">
            <uc:interface mac="52:54:00:aa:bb:01"><uc:ip address="192.0.2.10"/></uc:interface>
          </uc:firewall>
        </metadata>
        <devices>
          <interface type='bridge'>
            <mac address='52:54:00:aa:bb:01'/>
            <source bridge='br0'/>
            <target dev='vnet0'/>
            <alias name='net0'/>
          </interface>
          <interface type='bridge'>
            <mac address='52:54:00:aa:bb:02'/>
            <source bridge='br0'/>
            <alias name='net1'/>
          </interface>
        </devices>
      </domain>
      """;

  @Test
  void oneChangePerNicWithTheWholeInterfaceElement() {
    Config c = Config.parse("backend = nwfilter\nunlisted = allow\n", "t");
    List<SyncPlan.Change> changes = SyncPlan.plan(XML, SyncPlan.Where.LIVE, c);
    assertEquals(1, changes.size());
    SyncPlan.Change ch = changes.get(0);
    assertEquals("net0", ch.nic());
    assertEquals("live", ch.where().label());
    assertTrue(ch.interfaceBefore().startsWith("<interface type='bridge'>") && ch.interfaceBefore().endsWith("</interface>"));
    assertEquals("""
        <interface type='bridge'>
              <mac address='52:54:00:aa:bb:01'/>
              <source bridge='br0'/>
              <target dev='vnet0'/>
              <alias name='net0'/>
              <filterref filter='uncloud-clean-traffic'>
                <parameter name='IPV4' value='192.0.2.10'/>
                <parameter name='IPV4_PREFIX' value='32'/>
                <parameter name='IPV6' value='fe80::5054:ff:feaa:bb01'/>
                <parameter name='IPV6_PREFIX' value='128'/>
                <parameter name='MAC' value='52:54:00:aa:bb:01'/>
              </filterref>
            </interface>""", ch.interfaceAfter());
    // applying the change gives a document with nothing left to do
    String synced = XML.replace(ch.interfaceBefore(), ch.interfaceAfter());
    assertEquals(List.of(), SyncPlan.plan(synced, SyncPlan.Where.LIVE, c));
    // and back to nft: the filterref goes again
    List<SyncPlan.Change> back = SyncPlan.plan(synced, SyncPlan.Where.CONFIG, Config.parse("backend = nft\nunlisted = allow\n", "t"));
    assertEquals(1, back.size());
    assertEquals(ch.interfaceBefore(), back.get(0).interfaceAfter());
  }

  @Test
  void diffShowsOnlyTheFilterrefLines() {
    List<String> d = SyncPlan.diff("a\nb\nc", "a\nb\nx\ny\nc");
    assertEquals(List.of(" a", " b", "+x", "+y", " c"), d);
    assertEquals(List.of(" a", "-b", "+B", " c"), SyncPlan.diff("a\nb\nc", "a\nB\nc"));
  }
}
