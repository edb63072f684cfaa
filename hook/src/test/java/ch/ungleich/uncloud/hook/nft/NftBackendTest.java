package ch.ungleich.uncloud.hook.nft;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.ungleich.uncloud.hook.config.Config;
import ch.ungleich.uncloud.hook.metadata.PolicyBuilder;
import ch.ungleich.uncloud.hook.model.DomainPolicy;
import ch.ungleich.uncloud.hook.state.Owner;
import ch.ungleich.uncloud.hook.state.Plan;
import ch.ungleich.uncloud.libvirtxml.DomainReader;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class NftBackendTest {
  static final String A = "6d696776-6d31-4000-8000-00000000000a";
  static final String B = "6d696776-6d31-4000-8000-00000000000b";

  static DomainPolicy policy(String name, String uuid, String mac, String tap, String unlisted) {
    String xml = "<domain><name>" + name + "</name><uuid>" + uuid + "</uuid><devices><interface type='bridge'>"
        + "<mac address='" + mac + "'/><target dev='" + tap + "'/></interface></devices></domain>";
    return PolicyBuilder.build(DomainReader.read(xml), Config.parse("unlisted = " + unlisted, "t"));
  }

  /** Ownership records as StateStore keeps them, applied the way HookMain applies a plan. */
  static final class Records {
    final Map<String, Owner> taps = new HashMap<>();
    final Map<String, List<String>> domains = new HashMap<>();

    void commit(String uuid, Plan p) {
      p.release().forEach(taps::remove);
      taps.putAll(p.claim());
      if (p.domainTaps() == null || p.domainTaps().isEmpty()) {
        domains.remove(uuid);
      } else {
        domains.put(uuid, p.domainTaps());
      }
    }

    List<String> of(String uuid) {
      return domains.getOrDefault(uuid, List.of());
    }
  }

  @Test
  void startClaimsStopReleases() {
    Records r = new Records();
    DomainPolicy a = policy("a", A, "52:54:00:00:00:0a", "vnet0", "deny");
    Plan start = NftBackend.start(a, r.of(A), r.taps::get);
    assertTrue(start.script().contains("add element bridge uncloud ports { \"vnet0\" comment \"a " + A));
    r.commit(A, start);
    assertEquals(List.of("vnet0"), r.of(A));
    Plan stop = NftBackend.stop(A, r.of(A), r.taps::get);
    assertTrue(stop.script().contains("delete chain bridge uncloud port-vnet0"));
    r.commit(A, stop);
    assertTrue(r.taps.isEmpty());
    assertTrue(r.domains.isEmpty());
  }

  @Test
  void stopOfAnUnknownDomainDoesNothing() {
    Plan stop = NftBackend.stop(A, List.of(), t -> null);
    assertEquals("", stop.script());
    assertNull(stop.domainTaps());
  }

  @Test
  void startIsIdempotent() {
    Records r = new Records();
    DomainPolicy a = policy("a", A, "52:54:00:00:00:0a", "vnet0", "deny");
    Plan first = NftBackend.start(a, r.of(A), r.taps::get);
    r.commit(A, first);
    Plan second = NftBackend.start(a, r.of(A), r.taps::get);
    assertEquals(first.script(), second.script());
    assertEquals(first.claim(), second.claim());
    assertTrue(second.release().isEmpty());
  }

  /** libvirt reuses vnetN: B takes vnet0 before A's stop runs; A's stop must leave B's rules alone. */
  @Test
  void tapReuseNeverRemovesTheNewOwnersRules() {
    Records r = new Records();
    r.commit(A, NftBackend.start(policy("a", A, "52:54:00:00:00:0a", "vnet0", "deny"), r.of(A), r.taps::get));
    Plan b = NftBackend.start(policy("b", B, "52:54:00:00:00:0b", "vnet0", "deny"), r.of(B), r.taps::get);
    assertTrue(b.script().contains("flush chain bridge uncloud port-vnet0"), "B's start refills the chain");
    assertTrue(b.script().contains("ether saddr != 52:54:00:00:00:0b"));
    r.commit(B, b);
    Plan stopA = NftBackend.stop(A, r.of(A), r.taps::get);
    assertEquals("", stopA.script());
    r.commit(A, stopA);
    assertEquals(B, r.taps.get("vnet0").uuid());
  }

  @Test
  void aTapThatBecomesUnfilteredLosesThePreviousOwnersRulesAndGetsALoneAccept() {
    Records r = new Records();
    r.commit(A, NftBackend.start(policy("a", A, "52:54:00:00:00:0a", "vnet0", "deny"), r.of(A), r.taps::get));
    Plan b = NftBackend.start(policy("b", B, "52:54:00:00:00:0b", "vnet0", "allow"), r.of(B), r.taps::get);
    // flushed and refilled with one accept: nothing of A's rules is left, and the guard knows the NIC
    assertTrue(b.script().contains("add chain bridge uncloud port-vnet0\nflush chain bridge uncloud port-vnet0\n"
        + "add rule bridge uncloud port-vnet0 accept comment"), b.script());
    assertFalse(b.script().contains("port-vnet0 ether"), b.script());
    assertTrue(b.script().contains("comment \"b " + B + " 52:54:00:00:00:0b\" : jump port-vnet0 }"), b.script());
    r.commit(B, b);
    assertEquals(B, r.taps.get("vnet0").uuid());
  }

  @Test
  void aRestartedDomainReleasesTapsItNoLongerHas() {
    Records r = new Records();
    r.commit(A, NftBackend.start(policy("a", A, "52:54:00:00:00:0a", "vnet0", "deny"), r.of(A), r.taps::get));
    Plan again = NftBackend.start(policy("a", A, "52:54:00:00:00:0a", "vnet7", "deny"), r.of(A), r.taps::get);
    assertEquals(List.of("vnet0"), again.release());
    assertTrue(again.script().contains("delete chain bridge uncloud port-vnet0"));
    r.commit(A, again);
    assertEquals(List.of("vnet7"), r.of(A));
  }
}
