package ch.ungleich.uncloud.tests.lab;

import java.util.ArrayList;
import java.util.List;
import java.util.UUID;

/**
 * Builds a libvirt domain XML as libvirt hands it to the qemu hook: with {@code <target dev>} from
 * {@code start begin} on, without it at {@code stopped end} / {@code release end} (the tap is gone
 * by then, see shared/labs/README.md), plus our {@code <uc:firewall>} metadata.
 */
public final class DomainXml {
  public static final String NS = "https://ungleich.ch/uncloud/hook/1";

  /** One NIC. {@code ips == null} means no metadata for it (an "unlisted" NIC). */
  public record Nic(String mac, String tap, String type, List<String> ips, boolean trusted) {}

  private final String name;
  private final UUID uuid;
  private final List<Nic> nics = new ArrayList<>();

  private DomainXml(String name, UUID uuid) {
    this.name = name;
    this.uuid = uuid;
  }

  public static DomainXml domain(String name) {
    return new DomainXml(name, UUID.nameUUIDFromBytes(("ucf-" + name).getBytes()));
  }

  public String name() {
    return name;
  }

  public UUID uuid() {
    return uuid;
  }

  public List<Nic> nics() {
    return List.copyOf(nics);
  }

  /** A bridge NIC on br0 with metadata listing {@code ips}. */
  public DomainXml nic(String mac, String tap, String... ips) {
    nics.add(new Nic(mac, tap, "bridge", List.of(ips), false));
    return this;
  }

  /** A bridge NIC on br0 without metadata. */
  public DomainXml unlistedNic(String mac, String tap) {
    nics.add(new Nic(mac, tap, "bridge", null, false));
    return this;
  }

  /** A bridge NIC on br0 whose metadata says trusted="true". */
  public DomainXml trustedNic(String mac, String tap, String... ips) {
    nics.add(new Nic(mac, tap, "bridge", List.of(ips), true));
    return this;
  }

  /** The XML as libvirt passes it from {@code start begin} on (taps known). */
  public String running() {
    return xml(true);
  }

  /** The XML as libvirt passes it at prepare, stopped and release (no {@code <target dev>}). */
  public String inactive() {
    return xml(false);
  }

  public String xml(boolean withTargets) {
    StringBuilder x = new StringBuilder();
    x.append("<domain type='kvm' id='1'>\n");
    x.append("  <name>").append(name).append("</name>\n");
    x.append("  <uuid>").append(uuid).append("</uuid>\n");
    boolean anyMeta = nics.stream().anyMatch(n -> n.ips() != null);
    if (anyMeta) {
      x.append("  <metadata>\n");
      x.append("    <uc:firewall xmlns:uc=\"").append(NS).append("\">\n");
      for (Nic n : nics) {
        if (n.ips() == null) {
          continue;
        }
        x.append("      <uc:interface mac=\"").append(n.mac()).append('"');
        if (n.trusted()) {
          x.append(" trusted=\"true\"");
        }
        if (n.ips().isEmpty()) {
          x.append("/>\n");
          continue;
        }
        x.append(">\n");
        for (String ip : n.ips()) {
          x.append("        <uc:ip address=\"").append(ip).append("\"/>\n");
        }
        x.append("      </uc:interface>\n");
      }
      x.append("    </uc:firewall>\n");
      x.append("  </metadata>\n");
    }
    x.append("  <memory unit='KiB'>131072</memory>\n");
    x.append("  <vcpu placement='static'>1</vcpu>\n");
    x.append("  <os><type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type></os>\n");
    x.append("  <devices>\n");
    x.append("    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n");
    int i = 0;
    for (Nic n : nics) {
      x.append("    <interface type='").append(n.type()).append("'>\n");
      x.append("      <mac address='").append(n.mac()).append("'/>\n");
      x.append("      <source bridge='br0'/>\n");
      if (withTargets && n.tap() != null) {
        x.append("      <target dev='").append(n.tap()).append("'/>\n");
      }
      x.append("      <model type='virtio'/>\n");
      x.append("      <alias name='net").append(i++).append("'/>\n");
      x.append("    </interface>\n");
    }
    x.append("  </devices>\n");
    x.append("</domain>\n");
    return x.toString();
  }
}
