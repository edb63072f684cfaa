package ch.ungleich.uncloud.hook.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.ungleich.uncloud.hook.config.Config;
import ch.ungleich.uncloud.hook.metadata.PolicyBuilder;
import ch.ungleich.uncloud.hook.model.DomainPolicy;
import ch.ungleich.uncloud.hook.model.VmTaps;
import ch.ungleich.uncloud.hook.nft.FakeNftRunner;
import ch.ungleich.uncloud.hook.state.Plan;
import ch.ungleich.uncloud.hook.state.StateStore;
import ch.ungleich.uncloud.libvirtxml.DomainReader;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The per-domain core: what the hook and the agent share. */
class RulesTest {
  static final String UUID = "6d696776-6d31-4000-8000-000000000001";
  @TempDir Path tmp;
  FakeNftRunner nft;
  StateStore store;
  Rules rules;
  /** The host's interfaces and their MACs, as the agent's tapMac would see them. */
  Map<String, String> links = new HashMap<>();

  @BeforeEach
  void setUp() {
    nft = new FakeNftRunner();
    store = new StateStore(tmp.resolve("state").toString(), 5);
    rules = new Rules(store, nft, VmTaps.parse("vnet*"), links::keySet);
  }

  static DomainPolicy policy(int nics) {
    StringBuilder x = new StringBuilder("<domain type='qemu'><name>web01</name><uuid>" + UUID + "</uuid><devices>");
    for (int i = 0; i < nics; i++) {
      x.append("<interface type='bridge'><mac address='52:54:00:aa:bb:0" + i + "'/><source bridge='br0'/>"
          + "<target dev='vnet" + i + "'/><alias name='net" + i + "'/></interface>");
    }
    x.append("</devices></domain>");
    return PolicyBuilder.build(DomainReader.read(x.toString()), Config.defaults());
  }

  @Test
  void hotPlugThenDetachTouchesOnlyThatNic() {
    links.put("vnet0", "fe:54:00:aa:bb:00");
    rules.startLive(policy(1), links::get);
    links.put("vnet1", "fe:54:00:aa:bb:01");
    Plan plug = rules.startLive(policy(2), links::get);
    assertEquals(List.of("vnet0", "vnet1"), store.taps(UUID));
    assertTrue(plug.script().contains("port-vnet1"), plug.script());
    links.remove("vnet1");
    Plan detach = rules.startLive(policy(1), links::get);
    assertEquals(List.of("vnet1"), detach.release());
    assertEquals(List.of("vnet0"), store.taps(UUID));
    assertNull(store.owner("vnet1"));
  }

  @Test
  void agentApplyAfterStoppedEndResurrectsNothing() {
    links.put("vnet0", "fe:54:00:aa:bb:00");
    rules.start(policy(1));
    // the agent read the domain while it ran; then the VM stopped: taps gone, the hook's stopped end ran
    DomainPolicy readBefore = policy(1);
    links.clear();
    rules.stop(UUID);
    int scripts = nft.scripts.size();
    Plan late = rules.startLive(readBefore, links::get);
    assertEquals("", late.script());
    assertEquals(scripts, nft.scripts.size());
    assertTrue(store.taps(UUID).isEmpty());
    assertNull(store.owner("vnet0"));
  }

  @Test
  void tapReusedByAnotherNicIsNotTaken() {
    // vnet0 now belongs to another VM's NIC (libvirt reuses names): the stale read must not claim it
    links.put("vnet0", "fe:54:00:99:99:99");
    Plan p = rules.startLive(policy(1), links::get);
    assertEquals("", p.script());
    assertNull(store.owner("vnet0"));
  }

  @Test
  void batchIsOneTransactionOrEachOnItsOwn() {
    Rules.Batch b = rules.startAll(List.of(policy(2)));
    assertTrue(b.together());
    assertEquals(1, nft.scripts.size());
    nft.failWith = "refused";
    Rules.Batch f = rules.startAll(List.of(policy(1)));
    assertNotNull(f.combinedFailed());
    assertEquals(1, f.failures().size());
    assertNull(f.notLocked());
  }

  static final String CHAIN = "list chain bridge uncloud filter-prerouting";
  static final String MAP = "list map bridge uncloud ports";
  static final String GUARD_LINE = "iifname \"vnet*\" counter drop";

  /** The host's interfaces: lo, an uplink and the given taps (host-side MAC fe:54:00:aa:bb:NN). */
  void host(String... taps) {
    links.put("lo", "00:00:00:00:00:00");
    links.put("eth0", "52:54:00:12:34:56");
    for (String t : taps) {
      links.put(t, String.format("fe:54:00:aa:bb:%02x", Integer.parseInt(t.substring(4)) + 0x90));
    }
  }

  @Test
  void firstCallOnAnEmptyHostAddsTheGuardWithItsOwnElements() {
    nft.listings.put(CHAIN, "Error: No such file or directory");
    host("vnet0");
    Plan p = rules.start(policy(1));
    assertNull(p.note());
    assertTrue(p.script().contains(GUARD_LINE), p.script());
    assertTrue(p.script().indexOf(GUARD_LINE) < p.script().indexOf("port-vnet0"), "one transaction, guard first");
  }

  @Test
  void aRunningTapWithoutAnElementKeepsTheGuardOutUntilItHasOne() {
    // an older version's table: no guard; vnet1 is another running VM's NIC without an element
    nft.listings.put(CHAIN, "table bridge uncloud {\n\tchain filter-prerouting {\n\t\tiifname vmap @ports\n\t}\n}\n");
    nft.listings.put(MAP, "table bridge uncloud {\n\tmap ports {\n\t\telements = { \"vnet2\" comment \"x\" : jump port-vnet2 }\n\t}\n}\n");
    host("vnet0", "vnet1", "vnet2");
    Plan p = rules.start(policy(1));
    assertFalse(p.script().contains(GUARD_LINE), p.script());
    assertTrue(p.script().contains("port-vnet0"), p.script());
    assertTrue(p.note().contains("'vnet*' (vnet1)") && p.note().contains("uncloud-hook reconcile"), p.note());
    // once vnet1 has its element (its own hook call, reconcile), the next call adds the guard
    nft.listings.put(MAP, "elements = { \"vnet1\" : jump port-vnet1, \"vnet2\" comment \"x\" : jump port-vnet2 }");
    Plan again = rules.start(policy(1));
    assertNull(again.note());
    assertTrue(again.script().contains(GUARD_LINE), again.script());
  }

  @Test
  void anInstalledGuardStaysWithoutLookingAtInterfaces() {
    nft.listings.put(CHAIN, "\t\tiifname vmap @ports comment \"x\"\n\t\tiifname \"vnet*\" counter packets 3 bytes 180 drop comment \"y\"\n");
    Rules r = new Rules(store, nft, VmTaps.parse("vnet*"), () -> {
      throw new AssertionError("interfaces read although the guard is installed");
    });
    assertTrue(r.start(policy(1)).script().contains(GUARD_LINE));
  }

  @Test
  void stopNeverTouchesTheDispatchChain() {
    host("vnet0");
    rules.start(policy(1));
    Plan stop = rules.stop(UUID);
    assertFalse(stop.script().contains("filter-prerouting"), stop.script());
    assertTrue(stop.script().contains("delete chain bridge uncloud port-vnet0"), stop.script());
  }

  @Test
  void aBatchOfEveryRunningDomainAddsTheGuardInItsOneTransaction() {
    nft.listings.put(CHAIN, "Error: No such file or directory");
    host("vnet0", "vnet1");
    Rules.Batch b = rules.startAll(List.of(policy(2)));
    assertTrue(b.together());
    assertEquals(1, nft.scripts.size());
    assertTrue(nft.last().contains(GUARD_LINE), nft.last());
    assertEquals(nft.last().indexOf(GUARD_LINE), nft.last().lastIndexOf(GUARD_LINE), "one guard rule: " + nft.last());
  }

  @Test
  void failClosedIsTheDispatchRuleTheGuardAndTheTapsNoPatternMatches() {
    assertTrue(rules.failClosed(List.of("vnet0", "web-eth0")));
    String s = nft.last();
    assertTrue(s.contains("iifname vmap @ports"), s);
    assertTrue(s.contains("iifname \"vnet*\" counter drop"), s);
    assertTrue(s.contains("iifname { \"web-eth0\" } counter drop"), s);
    assertFalse(s.contains("port-"), "no port chain: a few lines at any size\n" + s);
    assertTrue(store.records().isEmpty(), "nothing recorded");
    Rules off = new Rules(store, nft, VmTaps.parse("none"), links::keySet);
    assertFalse(off.failClosed(List.of()), "nothing to drop: no transaction");
  }

  @Test
  void restoreAllDecidesTheGuardAsIfNoneWereInstalled() {
    links.put("vnet0", "fe:54:00:aa:bb:00");
    links.put("vnet9", "fe:54:00:99:99:99"); // a running VM the agent does not know
    // the dispatch chain lists the fail-closed guard: restoreAll must not take that as settled
    nft.listings.put("list chain bridge uncloud filter-prerouting",
        "table bridge uncloud {\n chain filter-prerouting {\n  iifname vmap @ports\n  iifname \"vnet*\" counter packets 0 bytes 0 drop\n }\n}\n");
    Rules.Batch b = rules.restoreAll(List.of(policy(1)), links::get);
    assertTrue(b.together());
    String s = nft.last();
    assertTrue(s.contains("port-vnet0"), s);
    assertFalse(s.contains("iifname \"vnet*\" counter drop"), "vnet9 would be cut off: guard withheld\n" + s);
    assertEquals(List.of("vnet0"), store.taps(UUID));
    // the same through startAllLive trusts the installed guard
    rules.startAllLive(List.of(policy(1)), links::get);
    assertTrue(nft.last().contains("iifname \"vnet*\" counter drop"), nft.last());
  }

  @Test
  void restoreInboundPutsBackWhatTheRecordsSay() {
    store.commitInbound(Map.of("vnet0", List.of("bridge uncloud-inbound delivered { \"vnet0\" }"),
        "vnet1", List.of("bridge uncloud-inbound delivered { \"vnet1\" }")));
    assertEquals(2, rules.restoreInbound());
    String s = nft.last();
    assertTrue(s.contains("add chain bridge uncloud-inbound deliver"), s);
    assertTrue(s.contains("add element bridge uncloud-inbound delivered { \"vnet0\", \"vnet1\" }"), s);
    assertFalse(s.contains("delete table"), "no rebuild while nft takes the additions\n" + s);
    store.commitInbound(Map.of("vnet1", List.of()));
    rules.restoreInbound();
    assertFalse(nft.last().contains("vnet1"), "a record removed (a hook's release) is not put back");
  }
}
