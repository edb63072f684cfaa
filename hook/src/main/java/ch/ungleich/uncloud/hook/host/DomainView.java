package ch.ungleich.uncloud.hook.host;

import ch.ungleich.uncloud.hook.UncloudException;
import ch.ungleich.uncloud.hook.config.Config;
import ch.ungleich.uncloud.hook.libvirt.LibvirtSession;
import ch.ungleich.uncloud.hook.model.DomainPolicy;
import ch.ungleich.uncloud.hook.model.IpPrefix;
import ch.ungleich.uncloud.hook.model.Mac;
import ch.ungleich.uncloud.hook.source.AddressSource;
import ch.ungleich.uncloud.libvirtxml.DomainReader;
import ch.ungleich.uncloud.libvirtxml.XmlException;
import ch.ungleich.uncloud.libvirtxml.domain.Domain;
import ch.ungleich.uncloud.libvirtxml.domain.Interface;
import ch.ungleich.uncloud.libvirtxml.firewall.Firewall;
import ch.ungleich.uncloud.libvirtxml.firewall.FirewallInterface;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * One domain as the operator commands see it: both definitions, our metadata in each, and the policy
 * the hook derives (from the live XML of a running domain, else from the persistent one). Pure: built
 * from the XML strings {@link LibvirtSession} returns, with the hook's own reader ({@link DomainReader}:
 * the same model as JAXB's, checked by DomainReaderTest, without JAXB's ~350 ms start-up per command).
 *
 * @param live the running definition, null for an inactive domain
 * @param config the persistent definition, null for a transient domain
 * @param policy the policy, null when the metadata or XML is invalid ({@code error} says why)
 * @param error one line: why there is no policy
 * @param configError why the persistent definition's metadata is unusable, or null
 */
public record DomainView(
    String name,
    String uuid,
    boolean active,
    Domain live,
    Domain config,
    DomainPolicy policy,
    String error,
    String configError) {

  /** Reads a domain's XML and derives its policy as the hook would. */
  public static DomainView of(LibvirtSession.DomainXml x, Config cfg) {
    return of(x, cfg, AddressSource.of(cfg));
  }

  /** {@link #of(LibvirtSession.DomainXml, Config)} with the addresses from {@code src} (one for many domains). */
  public static DomainView of(LibvirtSession.DomainXml x, Config cfg, AddressSource src) {
    Domain live = null;
    Domain config = null;
    String error = null;
    String configError = null;
    if (x.active()) {
      try {
        live = DomainReader.read(x.liveXml());
      } catch (XmlException e) {
        error = x.name() + ": " + e.getMessage();
      }
    }
    if (x.configXml() != null) {
      try {
        config = DomainReader.read(x.configXml());
      } catch (XmlException e) {
        configError = x.name() + " (persistent definition): " + e.getMessage();
      }
    } else if (!x.active()) {
      try {
        config = DomainReader.read(x.liveXml());
      } catch (XmlException e) {
        configError = x.name() + ": " + e.getMessage();
      }
    }
    Domain source = x.active() ? live : config;
    DomainPolicy policy = null;
    if (source != null) {
      try {
        policy = src.policy(source);
      } catch (UncloudException e) {
        error = e.getMessage();
      }
    } else if (error == null) {
      error = configError;
    }
    if (config != null && x.active() && configError == null) {
      try {
        src.policy(config);
      } catch (UncloudException e) {
        configError = "persistent definition: " + e.getMessage();
      }
    }
    return new DomainView(x.name(), x.uuid(), x.active(), live, config, policy, error, configError);
  }

  /** Our metadata in the live definition (null: none or inactive). */
  public Firewall liveMetadata() {
    return live == null || live.metadata == null ? null : live.metadata.firewall;
  }

  /** Our metadata in the persistent definition (null: none or transient). */
  public Firewall configMetadata() {
    return config == null || config.metadata == null ? null : config.metadata.firewall;
  }

  /** Our metadata as the hook reads it now: live for a running domain, else persistent. */
  public Firewall metadata() {
    return active ? liveMetadata() : configMetadata();
  }

  /** Whether there is a persistent definition. */
  public boolean persistent() {
    return config != null || configError != null;
  }

  /** The NICs of the definition the hook reads now. */
  public List<Interface> interfaces() {
    Domain d = active ? live : config;
    return d == null || d.devices == null ? List.of() : d.devices.interfaces;
  }

  /** The taps of a running domain (its {@code <target dev>}s), whatever its metadata says. */
  public List<String> taps() {
    List<String> out = new ArrayList<>();
    if (live != null && live.devices != null) {
      for (Interface i : live.devices.interfaces) {
        if (i.target != null && i.target.dev != null) {
          out.add(i.target.dev);
        }
      }
    }
    return out;
  }

  /**
   * Whether the live and persistent metadata say the same (order, case and notation aside); true for
   * an inactive or transient domain, which has only one.
   */
  public boolean metadataAgree() {
    if (!active || config == null) {
      return true;
    }
    return normal(liveMetadata()).equals(normal(configMetadata()));
  }

  /** A comparable form of our element: per NIC (sorted by MAC) trusted flag and sorted addresses. */
  public static String normal(Firewall f) {
    if (f == null || f.interfaces.isEmpty()) {
      return "";
    }
    List<String> nics = new ArrayList<>();
    for (FirewallInterface i : f.interfaces) {
      List<String> ips = new ArrayList<>();
      for (FirewallInterface.Ip ip : i.ips) {
        String a = ip.address == null ? "" : ip.address.strip();
        try {
          a = IpPrefix.parse(a).toString();
        } catch (UncloudException e) {
          // invalid: compared as written (the policy check reports it)
        }
        ips.add(a);
      }
      ips.sort(null);
      String mac = i.mac == null ? "" : i.mac.strip().toLowerCase(Locale.ROOT);
      try {
        mac = Mac.parse(mac).text();
      } catch (UncloudException e) {
        // as written
      }
      boolean trusted = i.trusted != null && (i.trusted.strip().equals("true") || i.trusted.strip().equals("1"));
      nics.add(mac + (trusted ? " trusted" : "") + " " + String.join(",", ips));
    }
    nics.sort(null);
    return String.join("; ", nics);
  }
}
