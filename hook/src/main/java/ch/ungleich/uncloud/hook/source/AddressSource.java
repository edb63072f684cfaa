package ch.ungleich.uncloud.hook.source;

import ch.ungleich.uncloud.hook.UncloudException;
import ch.ungleich.uncloud.hook.config.Config;
import ch.ungleich.uncloud.hook.metadata.PolicyBuilder;
import ch.ungleich.uncloud.hook.model.DomainPolicy;
import ch.ungleich.uncloud.libvirtxml.domain.Domain;
import ch.ungleich.uncloud.libvirtxml.domain.Metadata;
import ch.ungleich.uncloud.libvirtxml.firewall.Firewall;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Function;

/**
 * Where a domain's addresses come from ({@code source} in the host settings): our element in its XML
 * ({@code metadata}), or its key in etcd. Every path that builds a policy (the hook, {@code
 * hook-batch}, the CLI's inventory, nwfilter sync) builds it here, so both sources give the same
 * {@link DomainPolicy} through the same {@link PolicyBuilder} checks. One instance per process: a
 * key is read once, also when a command looks at the live and the persistent definition.
 */
public final class AddressSource {
  private final Config config;
  private final EtcdClient etcd;
  private final Function<String, String> values;
  private final Map<String, Optional<String>> read = new ConcurrentHashMap<>();

  private AddressSource(Config config, EtcdClient etcd, Function<String, String> values) {
    this.config = config;
    this.etcd = etcd;
    this.values = values;
  }

  /** The source the settings name; the etcd client connects on first use. */
  public static AddressSource of(Config config) {
    EtcdClient c = config.etcd().etcd() ? new EtcdClient(config.etcd()) : null;
    return new AddressSource(config, c, c == null ? null : c::get);
  }

  /**
   * {@code source = etcd} with the values from {@code values} (key to value, null: no such key; it
   * may throw {@link UncloudException} like the client): the agent's copy of the prefix, which its
   * watch keeps current.
   */
  public static AddressSource of(Config config, Function<String, String> values) {
    return new AddressSource(config, null, values);
  }

  public boolean etcd() {
    return values != null;
  }

  /** The client of {@code source = etcd}; null with {@code source = metadata}. */
  public EtcdClient client() {
    return etcd;
  }

  /** The etcd key of a domain: {@code etcd_prefix} + its UUID (lower case, dashes) or its name. */
  public static String key(Domain d, Config config) {
    String id = config.etcd().vmidByName() ? (d.name == null ? "" : d.name.strip())
        : d.uuid == null ? "" : PolicyBuilder.normaliseUuid(d.uuid);
    return config.etcd().prefix() + id;
  }

  /**
   * The domain's policy from this source.
   *
   * @throws UncloudException invalid XML metadata or etcd value (exit 1, naming domain, NIC or key), or
   *     etcd unreachable ({@code SOURCE_UNAVAILABLE}, naming the endpoints)
   */
  public DomainPolicy policy(Domain d) {
    return PolicyBuilder.build(resolve(d), config);
  }

  /**
   * The domain as the policy sees it: with {@code source = etcd}, its XML with our metadata element
   * replaced by the key's value (none when the key is missing: {@code unlisted} applies to every NIC);
   * the domain itself as it is with {@code source = metadata}.
   */
  public Domain resolve(Domain d) {
    if (values == null) {
      return d;
    }
    if (!config.etcd().vmidByName() && (d.uuid == null || !d.uuid.strip().replace("-", "").matches("[0-9a-fA-F]{32}"))) {
      return d; // PolicyBuilder refuses it: no valid <uuid>
    }
    String key = key(d, config);
    if (key.equals(config.etcd().prefix())) {
      throw UncloudException.invalid((d.name == null ? "(unnamed)" : d.name) + ": no domain name for its etcd key");
    }
    String value = read.computeIfAbsent(key, k -> Optional.ofNullable(values.apply(k))).orElse(null);
    return with(d, value == null ? null : EtcdValue.parse(value, d, key));
  }

  /** A copy of the domain whose metadata element is {@code fw} (null: none). */
  public static Domain with(Domain d, Firewall fw) {
    Domain out = new Domain();
    out.type = d.type;
    out.name = d.name;
    out.uuid = d.uuid;
    out.devices = d.devices;
    out.metadata = new Metadata();
    out.metadata.firewall = fw;
    return out;
  }
}
