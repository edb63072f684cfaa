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
                List.of(), "installed", new NftState.Counter(6, 360), new StatusCommand.InboundRules(true, 2, null)),
            new StatusCommand.NicStatus("net1", "52:54:00:aa:bb:02", "vnet1", "bridge", "filter", "metadata", List.of(),
                List.of(), "missing", null, new StatusCommand.InboundRules(true, 0, 1)),
            new StatusCommand.NicStatus("net2", "52:54:00:aa:bb:03", "vnet2", "bridge", "open", "trusted", List.of(),
                List.of(), "none", null, StatusCommand.InboundRules.NONE)))),
        null,
        List.of(new StatusCommand.InboundDrop("inet uncloud-inbound", "ingress-decide", "uc:ingress: not allowed", 3, 180),
            new StatusCommand.InboundDrop("bridge uncloud-inbound", "deliver", "unicast for another MAC (flooded unknown unicast)", 1, 60)));
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
        # HELP uncloud_hook_inbound_allows uc:allow rules of a NIC's uc:ingress or uc:egress in force (direction); no sample: that direction is not filtered.
        # TYPE uncloud_hook_inbound_allows gauge
        uncloud_hook_inbound_allows{L0direction="ingress"} 2
        uncloud_hook_inbound_allows{domain="web \\"1\\"",nic="net1",mac="52:54:00:aa:bb:02",direction="ingress"} 0
        uncloud_hook_inbound_allows{domain="web \\"1\\"",nic="net1",mac="52:54:00:aa:bb:02",direction="egress"} 1
        # HELP uncloud_hook_inbound_dropped_packets_total Packets the inbound tables dropped (uc:ingress/uc:egress not allowed, delivery filter), by rule; shared by every NIC of the host (table, chain, reason: the rule's comment).
        # TYPE uncloud_hook_inbound_dropped_packets_total counter
        uncloud_hook_inbound_dropped_packets_total{table="inet uncloud-inbound",chain="ingress-decide",reason="uc:ingress: not allowed"} 3
        uncloud_hook_inbound_dropped_packets_total{table="bridge uncloud-inbound",chain="deliver",reason="unicast for another MAC (flooded unknown unicast)"} 1
        # HELP uncloud_hook_inbound_dropped_bytes_total Bytes of the packets in uncloud_hook_inbound_dropped_packets_total.
        # TYPE uncloud_hook_inbound_dropped_bytes_total counter
        uncloud_hook_inbound_dropped_bytes_total{table="inet uncloud-inbound",chain="ingress-decide",reason="uc:ingress: not allowed"} 180
        uncloud_hook_inbound_dropped_bytes_total{table="bridge uncloud-inbound",chain="deliver",reason="unicast for another MAC (flooded unknown unicast)"} 60
        """.replace("L0", l0), StatusMetrics.render(r, Map.of("vnet0", chain)::get));
  }

  @Test
  void theInboundChainsThatCount() {
    assertEquals(List.of("bridge egress", "bridge deliver", "inet egress-decide", "inet ingress-decide"), StatusCommand.countingChains());
    assertEquals("in=2 out=off", new StatusCommand.InboundRules(true, 2, null).cell());
    assertEquals("-", StatusCommand.InboundRules.NONE.cell());
    assertEquals("delivery", new StatusCommand.InboundRules(true, null, null).cell());
  }

  @Test
  void labelValuesEscaped() {
    assertEquals("a\\\\b\\\"c\\nd", StatusMetrics.escape("a\\b\"c\nd"));
  }
}
