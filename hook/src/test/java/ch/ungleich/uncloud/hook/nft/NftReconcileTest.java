package ch.ungleich.uncloud.hook.nft;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.ungleich.uncloud.hook.config.Config;
import ch.ungleich.uncloud.hook.metadata.PolicyBuilder;
import ch.ungleich.uncloud.hook.model.DomainPolicy;
import ch.ungleich.uncloud.hook.state.Owner;
import ch.ungleich.uncloud.libvirtxml.LibvirtXml;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;

/** {@link NftBackend#reconcile}: against {@link FakeNft}, whose state is what the plans made. */
class NftReconcileTest {
  static final String U1 = "11111111-2222-4333-8444-000000000001";
  static final String U2 = "11111111-2222-4333-8444-000000000002";
  static final String U3 = "11111111-2222-4333-8444-000000000003";

  /** A domain XML with one bridged NIC per {mac, tap, ips...}; ips null = no metadata for that NIC. */
  static String domain(String name, String uuid, String[]... nics) {
    StringBuilder meta = new StringBuilder();
    StringBuilder devs = new StringBuilder();
    for (String[] n : nics) {
      devs.append("<interface type='bridge'><mac address='").append(n[0]).append("'/><source bridge='br0'/>");
      if (n[1] != null) {
        devs.append("<target dev='").append(n[1]).append("'/>");
      }
      devs.append("</interface>");
      if (n.length > 2) {
        meta.append("<uc:interface mac='").append(n[0]).append("'>");
        for (int i = 2; i < n.length; i++) {
          meta.append("<uc:ip address='").append(n[i]).append("'/>");
        }
        meta.append("</uc:interface>");
      }
    }
    return "<domain type='qemu'><name>" + name + "</name><uuid>" + uuid + "</uuid>"
        + "<metadata><uc:firewall xmlns:uc='https://ungleich.ch/uncloud/hook/1'>" + meta + "</uc:firewall></metadata>"
        + "<devices>" + devs + "</devices></domain>";
  }

  static DomainPolicy policy(String xml) {
    return PolicyBuilder.build(LibvirtXml.readDomain(xml), Config.defaults());
  }

  static final List<String> GUARD = List.of("vnet*");

  /** A host: fake nft, records, interfaces (tap to host-side MAC) and running domains. */
  static final class Host {
    final FakeNft nft = new FakeNft();
    final Map<String, Owner> records = new TreeMap<>();
    final Map<String, String> links = new HashMap<>();
    final List<DomainPolicy> domains = new ArrayList<>();
    final Set<String> untouchable = new java.util.HashSet<>();

    /** Starts a domain: its taps appear with libvirt's host-side MAC (fe:...). */
    Host run(DomainPolicy p) {
      domains.add(p);
      p.nics().forEach(n -> links.put(n.tap(), "fe" + n.mac().text().substring(2)));
      return this;
    }

    /** Plans like {@code Reconciler}: nft's form of the desired ruleset, unless the dispatch chain is missing. */
    ReconcilePlan plan() {
      NftState observed = nft.state();
      NftState canonical = observed.chain(NftScript.BASE_CHAIN) == null
          ? NftState.ABSENT : FakeNft.canonicalState(NftBackend.desiredScript(domains, GUARD));
      Set<String> running = domains.stream().map(DomainPolicy::uuid).collect(Collectors.toSet());
      return NftBackend.reconcile(domains, running, untouchable, nft.state(), canonical, records, links::get, GUARD);
    }

    /** Plans and applies like the command does: one transaction, then the records. */
    ReconcilePlan reconcile() {
      ReconcilePlan p = plan();
      if (!p.script().isEmpty()) {
        nft.apply(p.script());
      }
      records.clear();
      records.putAll(p.records());
      return p;
    }
  }

  static final DomainPolicy VM1 =
      policy(domain("vm1", U1, new String[] {"52:54:00:aa:bb:01", "vnet0", "192.0.2.10", "2001:db8:1::/64"}));
  static final DomainPolicy VM2 =
      policy(
          domain(
              "vm2", U2,
              new String[] {"52:54:00:aa:bb:02", "vnet1", "192.0.2.20"},
              new String[] {"52:54:00:aa:bb:03", "vnet2", "198.51.100.20"}));

  static List<String> actions(ReconcilePlan p) {
    return p.changes().stream().map(c -> c.action() + " " + (c.tap() == null ? "-" : c.tap())).toList();
  }

  @Test
  void freshHostGetsEverythingInOneTransactionAndThenNothing() {
    Host h = new Host().run(VM1).run(VM2);
    ReconcilePlan p = h.reconcile();
    assertEquals(
        List.of("prelude -", "install vnet0", "install vnet1", "install vnet2", "record vnet0", "record vnet1", "record vnet2"),
        actions(p));
    assertEquals(1, h.nft.scripts.size());
    assertEquals(Set.of("vnet0", "vnet1", "vnet2"), h.nft.state().ports().elements().keySet());
    assertEquals(new Owner(U2, "52:54:00:aa:bb:03", "vm2"), h.records.get("vnet2"));

    ReconcilePlan again = h.plan();
    assertTrue(again.isEmpty(), () -> "second plan not empty: " + again);
    assertEquals("", again.script());
  }

  @Test
  void aTableThatAppearsDuringReconcileIsInstalledAgainNotCompared() {
    // reconcile found no table (host boot), then a hook call installed vm1 before reconcile took the lock
    Host h = new Host().run(VM1).run(VM2);
    Host early = new Host().run(VM1);
    early.reconcile();
    h.nft.handEdit(early.nft.scripts.get(0));
    h.nft.count("port-vnet0", 0, 3, 180);
    ReconcilePlan p = NftBackend.reconcile(h.domains, Set.of(U1, U2), Set.of(), h.nft.state(), NftState.ABSENT,
        h.records, h.links::get, GUARD);
    assertEquals(List.of("prelude -", "update vnet0", "install vnet1", "install vnet2", "record vnet0", "record vnet1",
        "record vnet2"), actions(p));
    h.nft.apply(p.script());
    h.records.putAll(p.records());
    assertTrue(h.plan().isEmpty(), () -> "not idempotent: " + h.plan());
  }

  @Test
  void idempotentAfterEveryRepair() {
    Host h = new Host().run(VM1).run(VM2);
    h.reconcile();
    h.nft.deleteRule("port-vnet1", "source is not own IPv4");
    h.nft.handEdit(
        "add chain bridge uncloud port-vnet9\nadd element bridge uncloud ports { \"vnet9\" comment \"gone "
            + U3 + " 52:54:00:aa:bb:09\" : jump port-vnet9 }\n");
    h.records.put("vnet7", new Owner(U3, "52:54:00:aa:bb:07", "gone"));
    ReconcilePlan p = h.reconcile();
    assertEquals(List.of("update vnet1", "remove vnet9", "record vnet7"), actions(p));
    assertTrue(p.changes().get(0).detail().contains("missing: 'source is not own IPv4'"), p.changes().get(0).detail());
    assertTrue(h.plan().isEmpty(), () -> "not idempotent: " + h.plan());
    assertNull(h.nft.state().chain("port-vnet9"));
    assertFalse(h.records.containsKey("vnet7"));
  }

  @Test
  void correctChainsKeepTheirCounters() {
    Host h = new Host().run(VM1).run(VM2);
    h.reconcile();
    h.nft.count("port-vnet0", 0, 5, 300);
    h.nft.deleteRule("port-vnet2", "source is not own IPv4");
    ReconcilePlan p = h.reconcile();
    assertEquals(List.of("update vnet2"), actions(p));
    assertFalse(p.script().contains("port-vnet0"), p.script());
    assertEquals(new NftState.Counter(5, 300), h.nft.state().chain("port-vnet0").dropped());
  }

  @Test
  void aMissingElementIsRelabelledWithoutTouchingTheChain() {
    Host h = new Host().run(VM1);
    h.reconcile();
    h.nft.count("port-vnet0", 0, 1, 60);
    h.nft.handEdit("delete element bridge uncloud ports { \"vnet0\" }\n");
    ReconcilePlan p = h.reconcile();
    assertEquals(List.of("element vnet0"), actions(p));
    assertFalse(p.script().contains("flush chain bridge uncloud port-vnet0"), p.script());
    assertEquals(1, h.nft.state().chain("port-vnet0").dropped().packets());
    assertTrue(h.plan().isEmpty());
  }

  @Test
  void metadataChangeUpdatesOnlyThatChain() {
    Host h = new Host().run(VM1).run(VM2);
    h.reconcile();
    h.domains.set(0, policy(domain("vm1", U1, new String[] {"52:54:00:aa:bb:01", "vnet0", "192.0.2.11"})));
    ReconcilePlan p = h.reconcile();
    assertEquals(List.of("update vnet0"), actions(p));
    assertTrue(p.script().contains("192.0.2.11"));
    assertTrue(h.plan().isEmpty());
  }

  @Test
  void stoppedDomainsLoseTheirRulesAndATrustedNicGetsALoneAccept() {
    Host h = new Host().run(VM1).run(VM2);
    h.reconcile();
    h.domains.remove(1); // vm2 stopped without its hook (crash): its taps are gone
    h.links.remove("vnet1");
    h.links.remove("vnet2");
    h.domains.set(
        0,
        policy(
            domain("vm1", U1, new String[] {"52:54:00:aa:bb:01", "vnet0"}) // no metadata, then trusted:
                .replace("<uc:firewall xmlns:uc='https://ungleich.ch/uncloud/hook/1'>",
                    "<uc:firewall xmlns:uc='https://ungleich.ch/uncloud/hook/1'><uc:interface mac='52:54:00:aa:bb:01' trusted='true'/>")));
    ReconcilePlan p = h.reconcile();
    assertEquals(List.of("update vnet0", "remove vnet1", "remove vnet2", "record vnet1", "record vnet2"), actions(p));
    assertTrue(p.changes().get(1).detail().contains("no longer exists"), p.changes().get(1).detail());
    // the trusted NIC keeps an element, to a chain that accepts: the vm_taps guard must not drop it
    assertEquals(Set.of("vnet0"), h.nft.state().ports().elements().keySet());
    assertEquals(List.of("accept"), h.nft.state().chain("port-vnet0").rules().stream().map(r -> r.key().replaceFirst(" comment .*", "")).toList());
    assertEquals(List.of("filter-prerouting", "port-vnet0"), List.copyOf(h.nft.state().chains().keySet()));
    assertEquals(Set.of("vnet0"), h.records.keySet());
    assertTrue(h.plan().isEmpty());
  }

  @Test
  void upgradeAddsTheGuardInOneTransactionWithTheElementsOfEveryRunningNic() {
    // an older version's table: no guard, and the trusted NIC vnet7 has neither element nor chain
    DomainPolicy router = policy(
        domain("router", U3, new String[] {"52:54:00:aa:bb:07", "vnet7"})
            .replace("<uc:firewall xmlns:uc='https://ungleich.ch/uncloud/hook/1'>",
                "<uc:firewall xmlns:uc='https://ungleich.ch/uncloud/hook/1'><uc:interface mac='52:54:00:aa:bb:07' trusted='true'/>"));
    Host h = new Host().run(VM1).run(router);
    h.nft.handEdit(NftBackend.start(VM1, List.of(), t -> null).script());
    h.records.put("vnet0", NftBackend.owner(VM1, VM1.nics().get(0)));
    ReconcilePlan p = h.reconcile();
    assertEquals(List.of("prelude -", "install vnet7", "record vnet7"), actions(p));
    assertTrue(p.changes().get(0).detail().contains("vm_taps guard was missing"), p.changes().get(0).detail());
    String s = p.script();
    assertEquals(1, h.nft.scripts.size());
    assertTrue(s.indexOf("iifname \"vnet*\" counter drop") >= 0 && s.contains("{ \"vnet7\" comment \"router "), s);
    assertEquals(Set.of("vnet0", "vnet7"), h.nft.state().ports().elements().keySet());
    assertTrue(h.plan().isEmpty(), () -> "not idempotent: " + h.plan());
  }

  @Test
  void aTapOfAnInvalidDomainWithoutRulesIsNamedWhenTheGuardDropsIt() {
    Host h = new Host().run(VM1);
    h.links.put("vnet4", "fe:54:00:aa:bb:04");
    h.untouchable.add("vnet4");
    ReconcilePlan p = h.reconcile();
    assertTrue(p.notes().stream().anyMatch(n -> "vnet4".equals(n.tap()) && n.detail().contains("guard drops")), p.notes().toString());
  }

  @Test
  void racesWithTheHookAreLeftToTheHook() {
    Host h = new Host().run(VM1);
    h.reconcile();
    // vm3 started after libvirt was read: its hook installed vnet5; libvirt's list does not have it
    DomainPolicy vm3 = policy(domain("vm3", U3, new String[] {"52:54:00:aa:bb:05", "vnet5", "203.0.113.5"}));
    h.nft.apply(NftBackend.start(vm3, List.of(), t -> null, GUARD).script());
    h.records.put("vnet5", NftBackend.owner(vm3, vm3.nics().get(0)));
    h.links.put("vnet5", "fe:54:00:aa:bb:05");
    // vm1 stopped after libvirt was read: its tap is gone, its hook removed its rules
    h.links.remove("vnet0");
    h.nft.apply(NftBackend.stop(U1, List.of("vnet0"), t -> h.records.get(t)).script());
    h.records.remove("vnet0");
    ReconcilePlan p = h.reconcile();
    assertTrue(p.isEmpty(), () -> "should leave the hook's work alone: " + p);
    assertEquals(List.of("skip vnet0", "keep vnet5"), p.notes().stream().map(c -> c.action() + " " + c.tap()).toList());
    assertNotNull(h.nft.state().chain("port-vnet5"));
    assertEquals("vm3", h.records.get("vnet5").domain());
  }

  @Test
  void aReusedTapIsNotGivenToItsPreviousOwner() {
    Host h = new Host().run(VM1);
    h.reconcile();
    h.links.put("vnet0", "fe:54:00:aa:bb:77"); // vm1 stopped, another domain's NIC got vnet0
    ReconcilePlan p = h.plan();
    assertEquals("skip", p.notes().get(0).action());
    assertEquals(List.of("remove vnet0", "record vnet0"), actions(p));
  }

  @Test
  void invalidMetadataLeavesThatDomainsRulesAlone() {
    Host h = new Host().run(VM1).run(VM2);
    h.reconcile();
    h.domains.remove(1);
    h.untouchable.addAll(List.of("vnet1", "vnet2"));
    ReconcilePlan p = h.reconcile();
    assertTrue(p.isEmpty(), () -> p.toString());
    assertEquals(List.of("keep", "keep"), p.notes().stream().map(ReconcilePlan.Change::action).toList());
    assertNotNull(h.nft.state().chain("port-vnet1"));
    assertEquals("vm2", h.records.get("vnet1").domain());
  }

  @Test
  void aTableThatCannotBeFixedInPlaceIsRebuilt() {
    Host h = new Host().run(VM1);
    h.nft.handEdit(
        "add table bridge uncloud\nadd chain bridge uncloud filter-prerouting { type filter hook prerouting priority 0; policy accept; }\n");
    ReconcilePlan p = h.reconcile();
    assertEquals(List.of("rebuild -", "install vnet0", "record vnet0"), actions(p));
    assertTrue(p.script().startsWith("add table bridge uncloud\ndelete table bridge uncloud\n"), p.script());
    assertEquals("filter prerouting -300 accept", h.nft.state().chain("filter-prerouting").hook());
    assertTrue(h.plan().isEmpty());
  }

  @Test
  void aHandFlushedDispatchChainIsRestored() {
    Host h = new Host().run(VM1);
    h.reconcile();
    h.nft.handEdit("flush chain bridge uncloud filter-prerouting\n");
    ReconcilePlan p = h.reconcile();
    assertEquals(List.of("prelude -"), actions(p));
    assertTrue(h.plan().isEmpty());
  }

  @Test
  void ownerLabelsRoundTrip() {
    Owner o = new Owner(U1, "52:54:00:aa:bb:01", "my vm");
    assertEquals(o, NftBackend.fromComment(o.comment()));
    assertNull(NftBackend.fromComment("hand-made"));
  }
}
