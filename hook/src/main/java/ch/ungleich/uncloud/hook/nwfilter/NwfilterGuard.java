package ch.ungleich.uncloud.hook.nwfilter;

import ch.ungleich.uncloud.hook.model.NicPolicy;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The agent's fail-closed guard on nwfilter hosts, pure: {@code table bridge uncloud_nwfilter}, one
 * base chain at bridge prerouting before libvirt's ebtables chains, two sets of tap names.
 *
 * <pre>
 * chain guard { type filter hook prerouting priority -350; policy accept;
 *   meta iif @hold counter drop     # its filterref is being changed: libvirt tears its rules down first
 *   meta iif @bound accept          # libvirt's rules for it are complete (or it is not to be filtered):
 *                                   # on to libvirt's chains (table bridge nat, ebtables-nft)
 *   iifname "vnet*" counter drop }  # the vm_taps guard: any other VM tap (hot-plugged, not checked yet)
 * </pre>
 *
 * The sets hold interface indexes ({@code type iface_index}; nft resolves the names when it loads the
 * script): a tap that is deleted and created again under the same name (libvirt reuses {@code vnetN})
 * is a new index, so it is dropped until the agent has checked the new NIC. Only existing interfaces
 * may be named (nft refuses the whole script otherwise).
 *
 * An {@code accept} here ends only this chain: libvirt's chains at the same hook still see the frame,
 * so the filtering stays nwfilter's; a {@code drop} is final. Every change is the whole table in one
 * transaction ({@link #script}).
 */
public final class NwfilterGuard {
  public static final String FAMILY = "bridge";
  public static final String TABLE = "uncloud_nwfilter";
  public static final String CHAIN = "guard";
  public static final String BOUND = "bound";
  public static final String HOLD = "hold";
  /** Before libvirt's ebtables-nft nat PREROUTING (dstnat, -300). */
  public static final int PRIORITY = -350;

  private NwfilterGuard() {}

  /**
   * The table with exactly these sets, as one {@code nft -f} transaction: created when missing, the
   * chain's rules and both sets replaced.
   *
   * @param patterns the vm_taps patterns (an empty list: no drop of unknown taps)
   */
  public static String script(List<String> patterns, Collection<String> bound, Collection<String> hold) {
    String t = FAMILY + " " + TABLE;
    StringBuilder s = new StringBuilder();
    s.append("add table ").append(t).append('\n');
    s.append("add set ").append(t).append(' ').append(BOUND).append(" { type iface_index; }\n");
    s.append("add set ").append(t).append(' ').append(HOLD).append(" { type iface_index; }\n");
    s.append("add chain ").append(t).append(' ').append(CHAIN).append(" { type filter hook prerouting priority ")
        .append(PRIORITY).append("; policy accept; }\n");
    s.append("flush chain ").append(t).append(' ').append(CHAIN).append('\n');
    s.append("flush set ").append(t).append(' ').append(BOUND).append('\n');
    s.append("flush set ").append(t).append(' ').append(HOLD).append('\n');
    s.append("add rule ").append(t).append(' ').append(CHAIN).append(" meta iif @").append(HOLD)
        .append(" counter drop comment \"filterref being changed: dropped until libvirt's new rules are complete\"\n");
    s.append("add rule ").append(t).append(' ').append(CHAIN).append(" meta iif @").append(BOUND)
        .append(" accept comment \"libvirt's nwfilter rules complete: on to them\"\n");
    for (String p : patterns) {
      s.append("add rule ").append(t).append(' ').append(CHAIN).append(" iifname \"").append(p)
          .append("\" counter drop comment \"vm_taps: a VM tap whose filter is not in place is dropped\"\n");
    }
    elements(s, t, BOUND, bound);
    elements(s, t, HOLD, hold);
    return s.toString();
  }

  private static void elements(StringBuilder s, String t, String set, Collection<String> taps) {
    if (taps.isEmpty()) {
      return;
    }
    List<String> q = new ArrayList<>();
    for (String tap : new TreeSet<>(taps)) {
      q.add("\"" + tap + "\"");
    }
    s.append("add element ").append(t).append(' ').append(set).append(" { ").append(String.join(", ", q)).append(" }\n");
  }

  private static final Pattern SET_LINE = Pattern.compile("(?s)set (\\w+) \\{.*?\\n\\s*\\}");
  private static final Pattern QUOTED = Pattern.compile("\"([A-Za-z0-9_.:-]+)\"");

  /** The taps in one set of {@code nft list table bridge uncloud_nwfilter}'s text; empty when it has none. */
  public static Set<String> members(String tableListing, String set) {
    Set<String> out = new TreeSet<>();
    Matcher m = SET_LINE.matcher(tableListing);
    while (m.find()) {
      if (m.group(1).equals(set)) {
        Matcher q = QUOTED.matcher(m.group().replaceFirst("(?s)^.*?elements = ", "elements = "));
        if (m.group().contains("elements = ")) {
          while (q.find()) {
            out.add(q.group(1));
          }
        }
      }
    }
    return out;
  }

  /** Whether the listing has the guard chain with its drop of every vm_taps pattern. */
  public static boolean chainIntact(String tableListing, List<String> patterns) {
    if (!tableListing.contains("chain " + CHAIN + " {") || !tableListing.contains("iif @" + HOLD + " counter")
        || !tableListing.contains("iif @" + BOUND + " accept")) {
      return false;
    }
    for (String p : patterns) {
      if (!tableListing.contains("iifname \"" + p + "\" counter")) {
        return false;
      }
    }
    return true;
  }

  private static final Pattern LIBVIRT_JUMP = Pattern.compile("iifname \"([A-Za-z0-9_.:-]+)\"[^\\n]*\\bjump libvirt-I-\\1\\b");

  /**
   * The taps that libvirt's nwfilter root chain is linked for: {@code iifname "vnet1" ... jump
   * libvirt-I-vnet1} in {@code nft list chain bridge nat PREROUTING} (ebtables-nft). libvirt links it
   * after it has filled the tap's chains, and removes it first when it tears them down.
   */
  public static Set<String> linked(String preroutingListing) {
    Set<String> out = new TreeSet<>();
    Matcher m = LIBVIRT_JUMP.matcher(preroutingListing);
    while (m.find()) {
      out.add(m.group(1));
    }
    return out;
  }

  /**
   * Whether a NIC of a running domain may pass the guard: it is not to be filtered by us (trusted,
   * {@code unlisted = allow}, not on a bridge: libvirt binds nothing of ours), or libvirt's rules for
   * its tap are linked.
   */
  public static boolean mayPass(NicPolicy nic, Set<String> linked) {
    return NwfilterBackend.expected(nic) == null || linked.contains(nic.tap());
  }
}
