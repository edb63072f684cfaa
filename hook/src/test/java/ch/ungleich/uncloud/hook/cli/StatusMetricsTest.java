package ch.ungleich.uncloud.hook.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;

import ch.ungleich.uncloud.hook.nft.NftState;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The exact text; that a real Prometheus parser reads it is tests/CliLibvirtTest's part. */
class StatusMetricsTest {
  static NftState.Rule drop(String comment, long p, long b) {
    return new NftState.Rule("x", comment, true, p, b);
  }

  @Test
  void dropsByRuleCommentPlusRulesGauge() {
    NftState.Chain chain = new NftState.Chain("port-vnet0", null, List.of(
        drop("source MAC is not the NIC's", 2, 120),
        new NftState.Rule("y", "ARP from own MAC and IPv4", false, 0, 0),
        drop("source is not own IPv4", 1, 60),
        drop("source is not own IPv4", 3, 180)));
    StatusCommand.Result r = new StatusCommand.Result("nft", List.of(
        new StatusCommand.DomainStatus("web \"1\"", "u", true, null, List.of(
            new StatusCommand.NicStatus("net0", "52:54:00:aa:bb:01", "vnet0", "bridge", "filter", "metadata", List.of(),
                List.of(), "installed", new NftState.Counter(6, 360)),
            new StatusCommand.NicStatus("net1", "52:54:00:aa:bb:02", "vnet1", "bridge", "filter", "metadata", List.of(),
                List.of(), "missing", null),
            new StatusCommand.NicStatus("net2", "52:54:00:aa:bb:03", "vnet2", "bridge", "open", "trusted", List.of(),
                List.of(), "none", null)))));
    String l0 = "domain=\"web \\\"1\\\"\",nic=\"net0\",mac=\"52:54:00:aa:bb:01\",";
    assertEquals("""
        # HELP uncloud_hook_dropped_packets_total Packets a VM NIC sent that its rules dropped since they were installed, by drop rule (reason: the rule's comment).
        # TYPE uncloud_hook_dropped_packets_total counter
        uncloud_hook_dropped_packets_total{L0reason="source MAC is not the NIC's"} 2
        uncloud_hook_dropped_packets_total{L0reason="source is not own IPv4"} 4
        # HELP uncloud_hook_dropped_bytes_total Bytes of the packets in uncloud_hook_dropped_packets_total.
        # TYPE uncloud_hook_dropped_bytes_total counter
        uncloud_hook_dropped_bytes_total{L0reason="source MAC is not the NIC's"} 120
        uncloud_hook_dropped_bytes_total{L0reason="source is not own IPv4"} 240
        # HELP uncloud_hook_rules_installed 1 when a filtered NIC's rules are installed, 0 when they are missing (run uncloud-hook doctor / reconcile).
        # TYPE uncloud_hook_rules_installed gauge
        uncloud_hook_rules_installed{L0mode="filter"} 1
        uncloud_hook_rules_installed{domain="web \\"1\\"",nic="net1",mac="52:54:00:aa:bb:02",mode="filter"} 0
        """.replace("L0", l0), StatusMetrics.render(r, Map.of("vnet0", chain)::get));
  }

  @Test
  void labelValuesEscaped() {
    assertEquals("a\\\\b\\\"c\\nd", StatusMetrics.escape("a\\b\"c\nd"));
  }
}
