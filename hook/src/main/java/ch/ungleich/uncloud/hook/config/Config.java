package ch.ungleich.uncloud.hook.config;

import ch.ungleich.uncloud.hook.UncloudException;
import ch.ungleich.uncloud.hook.model.VmTaps;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Host settings from {@code /etc/uncloud-hook/uncloud-hook.conf}: {@code key = value} lines, {@code #}
 * comments. A missing file means the defaults; an unknown key or a bad value is an error (the hook then
 * refuses to start VMs rather than guess).
 *
 * @param backend {@code nft} (default) or {@code nwfilter}
 * @param unlisted what a bridged NIC without metadata gets: {@code deny} (default: own MAC and own
 *     EUI-64 link-local only), {@code mac-only}, {@code allow}
 * @param linkLocalAny {@code link_local = any}: every fe80::/10 source instead of the EUI-64 address and
 *     the listed ones
 * @param dhcpClient {@code dhcp_client = yes} (default): DHCPv4 discover from 0.0.0.0 may pass
 * @param stateDir ownership records and the lock; {@code /run/uncloud-hook}
 * @param logFile where the hook appends its log lines besides stderr; empty for none
 * @param lockTimeoutSeconds how long a call waits for another one holding the host lock
 * @param nft the nft binary
 * @param vmTaps {@code vm_taps}: which bridge ports are VM taps, dropped while they have no rules
 *     (default {@code vnet*}; {@code none}: no guard); see {@link VmTaps}
 * @param etcd {@code source} and the {@code etcd_*} settings: where a domain's addresses come from
 * @param agentResyncSeconds {@code agent_resync}: how often {@code uncloud-hook agent} compares the
 *     whole host with libvirt when no event came (the backstop for missed events); default 30
 * @param ingressDeny {@code ingress = deny}: every NIC with metadata (not trusted) is treated as if it had
 *     an empty {@code <uc:ingress/>}; default {@code allow} (only NICs with {@code uc:ingress} are filtered)
 */
public record Config(
    String backend,
    String unlisted,
    boolean linkLocalAny,
    boolean dhcpClient,
    String stateDir,
    String logFile,
    int lockTimeoutSeconds,
    String nft,
    VmTaps vmTaps,
    EtcdSettings etcd,
    int agentResyncSeconds,
    boolean ingressDeny) {

  public static final String DEFAULT_PATH = "/etc/uncloud-hook/uncloud-hook.conf";
  public static final String ENV = "UNCLOUD_HOOK_CONFIG";

  public static Config defaults() {
    return parse("", "defaults");
  }

  /** Parses the file's text; {@code where} names it in error messages. */
  public static Config parse(String text, String where) {
    Map<String, String> v = new LinkedHashMap<>();
    v.put("backend", "nft");
    v.put("unlisted", "deny");
    v.put("link_local", "eui64");
    v.put("dhcp_client", "yes");
    v.put("state_dir", "/run/uncloud-hook");
    v.put("log_file", "/var/log/uncloud-hook.log");
    v.put("lock_timeout", "30");
    v.put("nft", "/usr/sbin/nft");
    v.put("vm_taps", VmTaps.DEFAULT);
    EtcdSettings.putDefaults(v);
    v.put("agent_resync", "30");
    v.put("ingress", "allow");
    String[] lines = text.split("\n", -1);
    for (int n = 0; n < lines.length; n++) {
      String line = lines[n].strip();
      if (line.isEmpty() || line.startsWith("#")) {
        continue;
      }
      int eq = line.indexOf('=');
      if (eq < 0) {
        throw bad(where, n, "expected 'key = value', got '" + line + "'");
      }
      String key = line.substring(0, eq).strip();
      String value = unquote(line.substring(eq + 1).strip());
      if (!v.containsKey(key)) {
        throw bad(where, n, "unknown setting '" + key + "' (known: " + String.join(", ", v.keySet()) + ")");
      }
      v.put(key, value);
    }
    return new Config(
        oneOf(where, "backend", v, "nft", "nwfilter"),
        oneOf(where, "unlisted", v, "deny", "mac-only", "allow"),
        oneOf(where, "link_local", v, "eui64", "any").equals("any"),
        oneOf(where, "dhcp_client", v, "yes", "no").equals("yes"),
        absolute(where, "state_dir", v.get("state_dir"), false),
        absolute(where, "log_file", v.get("log_file"), true),
        seconds(where, "lock_timeout", v.get("lock_timeout")),
        absolute(where, "nft", v.get("nft"), false),
        vmTaps(where, v.get("vm_taps")),
        EtcdSettings.of(where, v),
        seconds(where, "agent_resync", v.get("agent_resync")),
        oneOf(where, "ingress", v, "allow", "deny").equals("deny"));
  }

  private static String unquote(String s) {
    if (s.length() >= 2 && (s.startsWith("\"") && s.endsWith("\"") || s.startsWith("'") && s.endsWith("'"))) {
      return s.substring(1, s.length() - 1);
    }
    return s;
  }

  static String oneOf(String where, String key, Map<String, String> v, String... allowed) {
    String value = v.get(key);
    for (String a : allowed) {
      if (a.equals(value)) {
        return value;
      }
    }
    throw UncloudException.invalid(
        where + ": " + key + " = '" + value + "' is not one of " + String.join(", ", allowed));
  }

  static String absolute(String where, String key, String value, boolean emptyOk) {
    if (value.isEmpty() && emptyOk) {
      return value;
    }
    if (!value.startsWith("/") || value.contains("\n")) {
      throw UncloudException.invalid(where + ": " + key + " must be an absolute path, got '" + value + "'");
    }
    return value;
  }

  private static VmTaps vmTaps(String where, String value) {
    try {
      return VmTaps.parse(value);
    } catch (IllegalArgumentException e) {
      throw UncloudException.invalid(where + ": vm_taps: " + e.getMessage());
    }
  }

  private static int seconds(String where, String key, String value) {
    if (!value.matches("[1-9][0-9]{0,3}")) {
      throw UncloudException.invalid(where + ": " + key + " must be 1 to 9999 seconds, got '" + value + "'");
    }
    return Integer.parseInt(value);
  }

  private static UncloudException bad(String where, int line, String what) {
    return UncloudException.invalid(where + ":" + (line + 1) + ": " + what);
  }
}
