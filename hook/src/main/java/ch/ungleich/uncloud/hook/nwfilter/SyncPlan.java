package ch.ungleich.uncloud.hook.nwfilter;

import ch.ungleich.uncloud.hook.UncloudException;
import ch.ungleich.uncloud.hook.config.Config;
import ch.ungleich.uncloud.hook.source.AddressSource;
import ch.ungleich.uncloud.hook.model.DomainPolicy;
import ch.ungleich.uncloud.libvirtxml.DomainReader;
import ch.ungleich.uncloud.libvirtxml.XmlException;
import ch.ungleich.uncloud.libvirtxml.domain.Domain;
import java.util.ArrayList;
import java.util.List;

/**
 * What {@code uncloud-hook sync} changes in one domain definition (persistent or live), pure: domain
 * XML and host settings in, one {@link Change} per NIC whose filterref must change out, each with the
 * NIC's whole {@code <interface>} element before and after (what {@code virDomainUpdateDeviceFlags}
 * takes).
 */
public final class SyncPlan {
  private SyncPlan() {}

  /** {@code config}: the persistent definition; {@code live}: the running VM. */
  public enum Where {
    CONFIG,
    LIVE;

    public String label() {
      return name().toLowerCase(java.util.Locale.ROOT);
    }
  }

  /** One NIC's change. */
  public record Change(
      String domain,
      Where where,
      String nic,
      String mac,
      NwfilterBackend.Kind kind,
      FilterRef before,
      FilterRef after,
      String difference,
      String interfaceBefore,
      String interfaceAfter) {}

  /**
   * The changes for one definition; empty when it is in sync.
   *
   * @throws UncloudException for invalid metadata or a NIC that carries a filterref not ours
   */
  public static List<Change> plan(String xml, Where where, Config config) {
    Domain d;
    try {
      d = DomainReader.read(xml);
    } catch (XmlException e) {
      throw UncloudException.invalid(e.getMessage());
    }
    DomainPolicy p = AddressSource.of(config).policy(d);
    List<NwfilterBackend.NicChange> plan = NwfilterBackend.plan(p, d, config.backend().equals("nwfilter"));
    List<FilterrefRewriter.Edit> edits = new ArrayList<>();
    for (NwfilterBackend.NicChange c : plan) {
      if (c.kind() != NwfilterBackend.Kind.KEEP) {
        edits.add(new FilterrefRewriter.Edit(c.index(), c.wanted()));
      }
    }
    if (edits.isEmpty()) {
      return List.of();
    }
    FilterrefRewriter.Result r = FilterrefRewriter.rewrite(xml, edits);
    List<Change> out = new ArrayList<>();
    for (FilterrefRewriter.NicText t : r.nics()) {
      NwfilterBackend.NicChange c = plan.get(t.index());
      out.add(new Change(p.name(), where, c.nic().name(), c.nic().mac().text(), c.kind(), c.observed(), c.wanted(),
          NwfilterBackend.difference(c), t.before(), t.after()));
    }
    return out;
  }

  /** A line diff of two texts: {@code -}/{@code +}/space prefixed lines (longest common subsequence). */
  public static List<String> diff(String before, String after) {
    String[] a = before.split("\n", -1);
    String[] b = after.split("\n", -1);
    int[][] lcs = new int[a.length + 1][b.length + 1];
    for (int i = a.length - 1; i >= 0; i--) {
      for (int j = b.length - 1; j >= 0; j--) {
        lcs[i][j] = a[i].equals(b[j]) ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
      }
    }
    List<String> out = new ArrayList<>();
    int i = 0;
    int j = 0;
    while (i < a.length || j < b.length) {
      if (i < a.length && j < b.length && a[i].equals(b[j])) {
        out.add(" " + a[i++]);
        j++;
      } else if (i < a.length && (j == b.length || lcs[i + 1][j] >= lcs[i][j + 1])) {
        out.add("-" + a[i++]);
      } else {
        out.add("+" + b[j++]);
      }
    }
    return out;
  }
}
