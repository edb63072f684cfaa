package ch.ungleich.uncloud.hook.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.ungleich.uncloud.hook.nft.NftNotifications.Event;
import ch.ungleich.uncloud.hook.nft.NftNotifications.Type;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** {@link Agent#damage}: what one generation's notifications took from our tables. */
class DamageTest {
  static final int BR = 7;
  static final int INET = 1;

  static Event ev(Type t, boolean add, int family, String table, String name, String... keys) {
    return new Event(t, add, family, table, name, List.of(keys));
  }

  static Event rule(boolean add, String chain) {
    return ev(Type.RULE, add, BR, "uncloud", chain);
  }

  /** What a hook call's transaction for vnet0 sends: the dispatch chain and the port chain flushed and refilled, the element replaced. */
  static List<Event> hookCall() {
    List<Event> l = new ArrayList<>();
    l.add(rule(false, "filter-prerouting"));
    l.add(rule(false, "filter-prerouting"));
    l.add(rule(true, "filter-prerouting"));
    l.add(rule(true, "filter-prerouting"));
    for (int i = 0; i < 5; i++) {
      l.add(rule(false, "port-vnet0"));
    }
    for (int i = 0; i < 5; i++) {
      l.add(rule(true, "port-vnet0"));
    }
    l.add(ev(Type.ELEMENT, true, BR, "uncloud", "ports", "vnet0"));
    l.add(ev(Type.ELEMENT, false, BR, "uncloud", "ports", "vnet0"));
    l.add(ev(Type.ELEMENT, true, BR, "uncloud", "ports", "vnet0"));
    // the inbound prelude rewrites the shared chains, the NIC's elements are added
    l.add(ev(Type.RULE, false, INET, "uncloud-inbound", "forward"));
    l.add(ev(Type.RULE, true, INET, "uncloud-inbound", "forward"));
    l.add(ev(Type.ELEMENT, true, BR, "uncloud-inbound", "delivered", "vnet0"));
    return l;
  }

  @Test
  void aHookCallsTransactionTakesNothing() {
    assertTrue(Agent.damage(hookCall()).none(), Agent.damage(hookCall()).toString());
  }

  @Test
  void nothingAtAllTakesNothing() {
    assertTrue(Agent.damage(List.of()).none());
  }

  @Test
  void flushRulesetLosesTheTableAndTheInboundTables() {
    List<Event> l = List.of(rule(false, "filter-prerouting"), rule(false, "port-vnet0"),
        ev(Type.SET, false, BR, "uncloud", "ports"), ev(Type.CHAIN, false, BR, "uncloud", "filter-prerouting"),
        ev(Type.CHAIN, false, BR, "uncloud", "port-vnet0"), ev(Type.TABLE, false, BR, "uncloud", "uncloud"),
        ev(Type.SET, false, INET, "uncloud-inbound", "in4"), ev(Type.TABLE, false, INET, "uncloud-inbound", "uncloud-inbound"));
    Damage d = Agent.damage(l);
    assertTrue(d.table() && d.inbound(), d.toString());
  }

  @Test
  void aDeletedElementOrChainNamesItsTap() {
    Damage d = Agent.damage(List.of(ev(Type.ELEMENT, false, BR, "uncloud", "ports", "vnet3")));
    assertEquals(new Damage(false, false, Set.of("vnet3"), false, false), d);
    d = Agent.damage(List.of(ev(Type.ELEMENT, false, BR, "uncloud", "ports", "vnet3"), rule(false, "port-vnet3"),
        ev(Type.CHAIN, false, BR, "uncloud", "port-vnet3")));
    assertEquals(new Damage(false, false, Set.of("vnet3"), false, false), d);
  }

  @Test
  void aRuleDeletedFromAChainThatGotNoneBackIsDamage() {
    assertEquals(new Damage(false, true, Set.of(), false, false), Agent.damage(List.of(rule(false, "filter-prerouting"))));
    assertEquals(new Damage(false, false, Set.of("vnet1"), false, false), Agent.damage(List.of(rule(false, "port-vnet1"))));
  }

  @Test
  void removedThenAddedWithinTheGenerationIsNoDamageButAddedThenRemovedIs() {
    List<Event> back = List.of(ev(Type.CHAIN, false, BR, "uncloud", "port-vnet0"), ev(Type.CHAIN, true, BR, "uncloud", "port-vnet0"),
        ev(Type.TABLE, false, BR, "uncloud", "uncloud"), ev(Type.TABLE, true, BR, "uncloud", "uncloud"));
    assertTrue(Agent.damage(back).none(), Agent.damage(back).toString());
    // what a hook's release sends: the element added (so that deleting cannot fail), then deleted
    List<Event> release = List.of(ev(Type.ELEMENT, true, BR, "uncloud", "ports", "vnet0"),
        ev(Type.ELEMENT, false, BR, "uncloud", "ports", "vnet0"), ev(Type.CHAIN, false, BR, "uncloud", "port-vnet0"));
    assertEquals(Set.of("vnet0"), Agent.damage(release).taps());
  }

  @Test
  void theInboundTablesLosingAnythingIsInboundDamage() {
    assertEquals(new Damage(false, false, Set.of(), true, false),
        Agent.damage(List.of(ev(Type.TABLE, false, INET, "uncloud-inbound", "uncloud-inbound"))));
    assertTrue(Agent.damage(List.of(ev(Type.ELEMENT, false, BR, "uncloud-inbound", "ingress", "vnet0"))).inbound());
    assertTrue(Agent.damage(List.of(ev(Type.RULE, false, BR, "uncloud-inbound", "deliver"))).inbound());
    assertFalse(Agent.damage(List.of(ev(Type.ELEMENT, false, BR, "uncloud-inbound", "ingress", "vnet0"),
        ev(Type.ELEMENT, true, BR, "uncloud-inbound", "ingress", "vnet0"))).inbound());
  }

  @Test
  void theMapDeletedIsTheWholeTable() {
    assertTrue(Agent.damage(List.of(ev(Type.SET, false, BR, "uncloud", "ports"))).table());
  }

  @Test
  void damageMerges() {
    Damage a = new Damage(false, false, Set.of("vnet0"), false, false);
    Damage b = new Damage(true, false, Set.of("vnet1"), true, false);
    assertEquals(new Damage(true, false, Set.of("vnet0", "vnet1"), true, false), a.merge(b));
    assertTrue(Damage.NONE.merge(Damage.UNKNOWN).unknown());
  }
}
