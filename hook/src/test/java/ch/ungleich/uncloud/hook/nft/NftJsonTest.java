package ch.ungleich.uncloud.hook.nft;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.ungleich.uncloud.hook.UncloudException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.Test;

/** {@link NftJson} on real {@code nft -j list table bridge uncloud} output of nft 1.0.6. */
class NftJsonTest {
  static String resource(String name) throws IOException {
    try (InputStream in = NftJsonTest.class.getResourceAsStream("/nft/" + name)) {
      return new String(in.readAllBytes(), StandardCharsets.UTF_8);
    }
  }

  @Test
  void readsTableMapChainsAndCounters() throws IOException {
    NftState s = NftJson.parse(resource("list-one-port.json"));
    assertTrue(s.exists());
    assertEquals(List.of("filter-prerouting", "port-vnet0"), List.copyOf(s.chains().keySet()));
    assertEquals("filter prerouting -300 accept", s.chain("filter-prerouting").hook());
    assertNull(s.chain("port-vnet0").hook());
    assertEquals("ifname : verdict", s.ports().type());
    NftState.Element e = s.element("vnet0");
    assertEquals("jump port-vnet0", e.verdict());
    assertEquals("vm1 11111111-2222-4333-8444-555555555555 52:54:00:aa:bb:01", e.comment());
    NftState.Chain port = s.chain("port-vnet0");
    assertEquals(12, port.rules().size());
    // the sum of every rule that counts and drops: source MAC (3/180) and the final drop (2/120)
    assertEquals(new NftState.Counter(5, 300), port.dropped());
    assertEquals(6, port.rules().stream().filter(NftState.Rule::countsDrops).count());
    assertFalse(port.rules().get(1).countsDrops()); // ARP accept
  }

  @Test
  void rulesDifferingOnlyInCountersHaveTheSameKey() throws IOException {
    String json = resource("list-one-port.json");
    NftState a = NftJson.parse(json);
    NftState b = NftJson.parse(json.replace("\"packets\": 3", "\"packets\": 99").replace("\"handle\": 5", "\"handle\": 50"));
    assertEquals(a.chain("port-vnet0").keys(), b.chain("port-vnet0").keys());
    assertEquals(99 + 2, b.chain("port-vnet0").dropped().packets());
    NftState c = NftJson.parse(json.replace("\"right\": \"192.0.2.10\"", "\"right\": \"192.0.2.11\""));
    assertFalse(a.chain("port-vnet0").keys().equals(c.chain("port-vnet0").keys()));
  }

  @Test
  void otherTablesAndGarbage() {
    assertFalse(NftJson.parse("{\"nftables\": [{\"metainfo\": {\"json_schema_version\": 1}}]}").exists());
    assertThrows(UncloudException.class, () -> NftJson.parse("Error: no such table"));
    assertThrows(UncloudException.class, () -> NftJson.parse("{}"));
  }
}
