package ch.ungleich.uncloud.hook.nft;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.ungleich.uncloud.hook.config.Config;
import ch.ungleich.uncloud.hook.metadata.PolicyBuilder;
import ch.ungleich.uncloud.hook.state.Owner;
import ch.ungleich.uncloud.libvirtxml.DomainReader;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * The inbound tables' drift against real {@code nft -j -p} listings (nft 1.0.6): {@code
 * inbound-installed.json} is the prelude and the elements of {@code inbound-domain.xml} (the issue's
 * example plus a /64) as the hook installed them, {@code inbound-prelude.json} the prelude alone.
 */
class InboundDriftTest {
  static final Map<String, Owner> OWNERS = Map.of("vnet0", new Owner("11111111-2222-4333-8444-000000000001", "52:54:00:aa:bb:01", "dom-a"));

  static String resource(String name) {
    try {
      return Files.readString(Path.of("src/test/resources/nft", name));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  static final InboundState INSTALLED = InboundState.parse(resource("inbound-installed.json"));
  static final InboundState PRELUDE = InboundState.parse(resource("inbound-prelude.json"));

  static Map<String, List<String>> want() {
    return Map.of("vnet0", InboundScript.elements(
        PolicyBuilder.build(DomainReader.read(resource("inbound-domain.xml")), Config.defaults()).nics().get(0)));
  }

  /** nft's JSON with the text replaced: {@code from} must occur. */
  static InboundState edited(String from, String to) {
    String json = resource("inbound-installed.json");
    assertTrue(json.contains(from), from);
    return InboundState.parse(json.replace(from, to));
  }

  @Test
  void whatTheHookInstalledIsNoDrift() {
    assertTrue(INSTALLED.present());
    assertEquals(8, INSTALLED.chains().size());
    assertEquals(14, INSTALLED.sets().size());
    // every element nft lists reads back as the text the hook wrote
    int n = 0;
    for (String l : want().get("vnet0")) {
      String[] p = l.split(" ", 4);
      String body = p[3].substring(2, p[3].length() - 2);
      assertTrue(INSTALLED.sets().get(p[0] + " " + p[2]).elements().contains(body), l + " in " + INSTALLED.sets().get(p[0] + " " + p[2]));
      n++;
    }
    assertEquals(38, n);
    InboundDrift.Result r = InboundDrift.compare(want(), OWNERS, INSTALLED, PRELUDE);
    assertEquals(List.of(), r.changes());
    assertTrue(r.isEmpty());
  }

  @Test
  void aMissingElementIsNamedWithItsTapAndAddedBack() {
    InboundState s = edited("{\"concat\": [\"vnet0\", \"52:54:00:aa:bb:01\"]}", "");
    InboundDrift.Result r = InboundDrift.compare(want(), OWNERS, s, PRELUDE);
    assertEquals(1, r.changes().size(), r.changes().toString());
    ReconcilePlan.Change c = r.changes().get(0);
    assertEquals("inbound", c.action());
    assertEquals("vnet0", c.tap());
    assertEquals("dom-a", c.domain());
    assertEquals("1 inbound set element missing: macs { \"vnet0\" . 52:54:00:aa:bb:01 }", c.detail());
    assertEquals(List.of("add element bridge uncloud-inbound macs { \"vnet0\" . 52:54:00:aa:bb:01 }"), r.lines());
    assertEquals(InboundScript.ensure(), r.script().subList(0, InboundScript.ensure().size()));
  }

  @Test
  void anElementNobodyDemandsIsDeleted() {
    // an allow someone added by hand: tcp 23 from anywhere
    InboundState s = edited("{\"concat\": [\"192.0.2.10\", 6, 22,",
        "{\"concat\": [\"192.0.2.10\", 6, 23, {\"prefix\": {\"addr\": \"0.0.0.0\", \"len\": 0}}]}, {\"concat\": [\"192.0.2.10\", 6, 22,");
    InboundDrift.Result r = InboundDrift.compare(want(), OWNERS, s, PRELUDE);
    assertEquals(List.of("delete element inet uncloud-inbound allow-in4 { 192.0.2.10 . 6 . 23 . 0.0.0.0/0 }"), r.lines());
    assertTrue(r.changes().get(0).detail().startsWith("1 inbound set element no running NIC demands (reconcile deletes it): inet allow-in4"),
        r.changes().toString());
    // a stopped NIC's elements are all unexpected
    InboundDrift.Result gone = InboundDrift.compare(Map.of(), Map.of(), INSTALLED, PRELUDE);
    // 38 elements in 14 sets: one grouped command per set
    assertEquals(14, gone.lines().size(), gone.lines().toString());
    assertTrue(gone.lines().stream().allMatch(l -> l.startsWith("delete element ")));
    assertEquals(38, elementCount(gone.lines()));
  }

  @Test
  void aChangedChainIsRewrittenAloneAndAMissingTableRebuildsBoth() {
    // the delivery filter's drop rule for other MACs deleted
    String json = resource("inbound-installed.json");
    int at = json.indexOf("\"comment\": \"unicast for another MAC (flooded unknown unicast)\"");
    int start = json.lastIndexOf("{\"rule\":", at);
    int end = json.indexOf("{\"rule\":", at);
    InboundState s = InboundState.parse(json.substring(0, start) + json.substring(end));
    InboundDrift.Result r = InboundDrift.compare(want(), OWNERS, s, PRELUDE);
    assertEquals(List.of("chain bridge uncloud-inbound deliver rules differ (6 installed, 7 expected); missing: 'unicast for"
        + " another MAC (flooded unknown unicast)'"), r.changes().stream().map(ReconcilePlan.Change::detail).toList());
    assertTrue(r.lines().contains("flush chain bridge uncloud-inbound deliver"), r.lines().toString());
    assertFalse(r.lines().contains("flush chain bridge uncloud-inbound postrouting"), r.lines().toString());
    assertEquals(1, r.lines().stream().filter(l -> l.startsWith("flush chain")).count(), r.lines().toString());
    assertEquals(7, r.lines().stream().filter(l -> l.startsWith("add rule bridge uncloud-inbound deliver ")).count());

    // the inet table gone (nft delete table inet uncloud-inbound)
    InboundState bridgeOnly = InboundState.parse(json.substring(0, json.indexOf("{\"nftables\"", 10)));
    assertEquals(java.util.Set.of("bridge"), bridgeOnly.tables());
    InboundDrift.Result rebuilt = InboundDrift.compare(want(), OWNERS, bridgeOnly, PRELUDE);
    assertTrue(rebuilt.rebuild());
    assertEquals("table inet uncloud-inbound was missing: both inbound tables rebuilt with every NIC's elements",
        rebuilt.changes().get(0).detail());
    assertEquals(InboundScript.rebuild(), rebuilt.script().subList(0, InboundScript.rebuild().size()));
    assertEquals(14, rebuilt.lines().stream().filter(l -> l.startsWith("add element ")).count());
    assertEquals(38, elementCount(rebuilt.lines().stream().filter(l -> l.startsWith("add element ")).toList()));
    // no NIC needs them: nothing to do
    assertTrue(InboundDrift.compare(Map.of(), Map.of(), InboundState.ABSENT, InboundState.ABSENT).isEmpty());
  }

  /** Elements in grouped {@code add/delete element S { a, b }} lines. */
  static int elementCount(List<String> lines) {
    return lines.stream().mapToInt(l -> l.substring(l.indexOf(" { ") + 3, l.length() - 2).split(", ").length).sum();
  }
}
