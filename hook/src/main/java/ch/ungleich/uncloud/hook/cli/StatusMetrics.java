package ch.ungleich.uncloud.hook.cli;

import ch.ungleich.uncloud.hook.nft.NftState;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Function;

/**
 * {@code status --prometheus}: the counters {@code status} shows, in the Prometheus text exposition
 * format (version 0.0.4), for node_exporter's textfile collector. Written by hand: the Prometheus Java
 * client's exposition module (prometheus-metrics-exposition-textformats 1.10.0 with -model and -config,
 * 240 KB) added 80 ms wall and 40 ms CPU to each JVM run that wrote ten samples (median of 11), for what
 * is three metric families of plain lines; tests/CliLibvirtTest parses this output with the reference
 * Python parser.
 */
final class StatusMetrics {
  private StatusMetrics() {}

  /** One counting drop rule's total, by its comment (rules with the same comment are summed). */
  record Drop(String reason, long packets, long bytes) {}

  /** The drops of a tap's chain, by reason, in rule order; empty when the chain is absent. */
  static List<Drop> drops(NftState.Chain chain) {
    Map<String, long[]> by = new LinkedHashMap<>();
    if (chain != null) {
      for (NftState.Rule r : chain.rules()) {
        if (r.countsDrops()) {
          long[] v = by.computeIfAbsent(r.comment() == null ? "(no comment)" : r.comment(), k -> new long[2]);
          v[0] += r.packets();
          v[1] += r.bytes();
        }
      }
    }
    List<Drop> out = new ArrayList<>();
    by.forEach((k, v) -> out.add(new Drop(k, v[0], v[1])));
    return out;
  }

  /**
   * The exposition text.
   *
   * @param chains a running NIC's tap to its chain in our table, null when it has none
   */
  static String render(StatusCommand.Result r, Function<String, NftState.Chain> chains) {
    StringBuilder packets = family("uncloud_hook_dropped_packets_total", "counter",
        "Packets a VM NIC sent that its rules dropped since they were installed, by drop rule (reason: the rule's comment).");
    StringBuilder bytes = family("uncloud_hook_dropped_bytes_total", "counter",
        "Bytes of the packets in uncloud_hook_dropped_packets_total.");
    StringBuilder rules = family("uncloud_hook_rules_installed", "gauge",
        "1 when a filtered NIC's rules are installed, 0 when they are missing (run uncloud-hook doctor / reconcile).");
    for (StatusCommand.DomainStatus d : r.domains()) {
      for (StatusCommand.NicStatus n : d.nics()) {
        if (n.rules().equals("installed") || n.rules().equals("missing")) {
          rules.append(sample("uncloud_hook_rules_installed", labels(d, n, "mode", n.mode()),
              n.rules().equals("installed") ? 1 : 0));
        }
        if (n.dropped() == null || n.tap() == null) {
          continue;
        }
        for (Drop x : drops(chains.apply(n.tap()))) {
          String l = labels(d, n, "reason", x.reason());
          packets.append(sample("uncloud_hook_dropped_packets_total", l, x.packets()));
          bytes.append(sample("uncloud_hook_dropped_bytes_total", l, x.bytes()));
        }
      }
    }
    StringBuilder allows = family("uncloud_hook_inbound_allows", "gauge",
        "uc:allow rules of a NIC's uc:ingress or uc:egress in force (direction); no sample: that direction is not filtered.");
    for (StatusCommand.DomainStatus d : r.domains()) {
      for (StatusCommand.NicStatus n : d.nics()) {
        if (n.inbound().ingress() != null) {
          allows.append(sample("uncloud_hook_inbound_allows", labels(d, n, "direction", "ingress"), n.inbound().ingress()));
        }
        if (n.inbound().egress() != null) {
          allows.append(sample("uncloud_hook_inbound_allows", labels(d, n, "direction", "egress"), n.inbound().egress()));
        }
      }
    }
    StringBuilder inPackets = family("uncloud_hook_inbound_dropped_packets_total", "counter",
        "Packets the inbound tables dropped (uc:ingress/uc:egress not allowed, delivery filter), by rule; shared by every NIC"
            + " of the host (table, chain, reason: the rule's comment).");
    StringBuilder inBytes = family("uncloud_hook_inbound_dropped_bytes_total", "counter",
        "Bytes of the packets in uncloud_hook_inbound_dropped_packets_total.");
    if (r.inbound() != null) {
      for (StatusCommand.InboundDrop x : r.inbound()) {
        String l = "table=\"" + escape(x.table()) + "\",chain=\"" + escape(x.chain()) + "\",reason=\"" + escape(x.reason()) + "\"";
        inPackets.append(sample("uncloud_hook_inbound_dropped_packets_total", l, x.packets()));
        inBytes.append(sample("uncloud_hook_inbound_dropped_bytes_total", l, x.bytes()));
      }
    }
    return packets.append(bytes).append(rules).append(allows).append(inPackets).append(inBytes).toString();
  }

  private static StringBuilder family(String name, String type, String help) {
    return new StringBuilder("# HELP ").append(name).append(' ').append(help).append("\n# TYPE ").append(name)
        .append(' ').append(type).append('\n');
  }

  private static String labels(StatusCommand.DomainStatus d, StatusCommand.NicStatus n, String key, String value) {
    return "domain=\"" + escape(d.name()) + "\",nic=\"" + escape(n.name()) + "\",mac=\"" + escape(n.mac()) + "\","
        + key + "=\"" + escape(value) + "\"";
  }

  private static String sample(String name, String labels, long value) {
    return name + "{" + labels + "} " + value + "\n";
  }

  /** Label values: backslash, double quote and line feed escaped, as the format demands. */
  static String escape(String s) {
    return s == null ? "" : s.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n");
  }
}
