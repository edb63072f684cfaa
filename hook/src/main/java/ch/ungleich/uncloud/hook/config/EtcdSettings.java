package ch.ungleich.uncloud.hook.config;

import ch.ungleich.uncloud.hook.UncloudException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

/**
 * Where a domain's addresses come from: {@code source = metadata} (default: our element in the domain
 * XML) or {@code source = etcd} (the key {@code etcd_prefix + <vmid>} in an etcd cluster, the uncloud
 * design's {@code distributed-firewall/vm/<vmid>}).
 *
 * @param etcd {@code source = etcd}
 * @param endpoints {@code etcd_endpoints}: {@code http(s)://host:port}, tried in order until one answers
 * @param prefix {@code etcd_prefix}, {@code distributed-firewall/vm/} by default
 * @param vmidByName {@code etcd_vmid = name}: the key ends in the domain's name, not in its UUID (default)
 * @param timeoutMillis {@code etcd_timeout} (seconds, 0.1 to 60): connect plus answer, per endpoint
 * @param ca {@code etcd_ca}: PEM file of the CA that signed the members' certificates; empty: the JVM's
 * @param cert {@code etcd_cert}: PEM client certificate for etcd's {@code --client-cert-auth}; empty: none
 * @param key {@code etcd_key}: its private key, PEM PKCS#8 ({@code BEGIN PRIVATE KEY})
 */
public record EtcdSettings(
    boolean etcd,
    List<String> endpoints,
    String prefix,
    boolean vmidByName,
    int timeoutMillis,
    String ca,
    String cert,
    String key) {

  /** {@code http(s)://host:port}: a DNS name, an IPv4 literal or a bracketed IPv6 literal; no path. */
  private static final Pattern ENDPOINT =
      Pattern.compile("https?://([A-Za-z0-9]([A-Za-z0-9.-]{0,252})|\\[[0-9A-Fa-f:.]{2,45}\\]):[0-9]{1,5}");
  private static final Pattern TIMEOUT = Pattern.compile("([1-9][0-9]?|0)(\\.[0-9])?");

  static void putDefaults(Map<String, String> v) {
    v.put("source", "metadata");
    v.put("etcd_endpoints", "");
    v.put("etcd_prefix", "distributed-firewall/vm/");
    v.put("etcd_vmid", "uuid");
    v.put("etcd_timeout", "2");
    v.put("etcd_ca", "");
    v.put("etcd_cert", "");
    v.put("etcd_key", "");
  }

  static EtcdSettings of(String where, Map<String, String> v) {
    boolean etcd = Config.oneOf(where, "source", v, "metadata", "etcd").equals("etcd");
    List<String> endpoints = new ArrayList<>();
    for (String e : v.get("etcd_endpoints").split(",", -1)) {
      String s = e.strip();
      if (s.isEmpty() && v.get("etcd_endpoints").isBlank()) {
        continue;
      }
      if (!ENDPOINT.matcher(s).matches() || Integer.parseInt(s.substring(s.lastIndexOf(':') + 1)) > 65535
          || Integer.parseInt(s.substring(s.lastIndexOf(':') + 1)) == 0) {
        throw UncloudException.invalid(where + ": etcd_endpoints: '" + s + "' is not http(s)://host:port");
      }
      endpoints.add(s);
    }
    if (etcd && endpoints.isEmpty()) {
      throw UncloudException.invalid(where + ": source = etcd needs etcd_endpoints (http(s)://host:port, ...)");
    }
    String prefix = v.get("etcd_prefix");
    if (prefix.isEmpty() || !prefix.chars().allMatch(c -> c > 0x20 && c < 0x7f)) {
      throw UncloudException.invalid(where + ": etcd_prefix must be printable ASCII without spaces, got '" + prefix + "'");
    }
    String t = v.get("etcd_timeout");
    if (!TIMEOUT.matcher(t).matches() || Double.parseDouble(t) < 0.1 || Double.parseDouble(t) > 60) {
      throw UncloudException.invalid(where + ": etcd_timeout must be 0.1 to 60 seconds, got '" + t + "'");
    }
    String ca = Config.absolute(where, "etcd_ca", v.get("etcd_ca"), true);
    String cert = Config.absolute(where, "etcd_cert", v.get("etcd_cert"), true);
    String key = Config.absolute(where, "etcd_key", v.get("etcd_key"), true);
    if (cert.isEmpty() != key.isEmpty()) {
      throw UncloudException.invalid(where + ": etcd_cert and etcd_key go together (a client certificate and its key)");
    }
    if (!(ca + cert).isEmpty() && endpoints.stream().noneMatch(e -> e.startsWith("https:"))) {
      throw UncloudException.invalid(where + ": etcd_ca/etcd_cert are set but no etcd endpoint is https://");
    }
    return new EtcdSettings(
        etcd,
        List.copyOf(endpoints),
        prefix,
        Config.oneOf(where, "etcd_vmid", v, "uuid", "name").equals("name"),
        (int) Math.round(Double.parseDouble(t) * 1000),
        ca,
        cert,
        key);
  }
}
