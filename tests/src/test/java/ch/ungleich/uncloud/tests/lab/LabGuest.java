package ch.ungleich.uncloud.tests.lab;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * A lab guest's identity and the probes it sends (see resources lab/ucprobe.c): its addresses, the
 * observer it probes and the foreign addresses it tries to spoof. {@link #domainXml} gives a
 * libvirt domain (type qemu/TCG with {@link GuestImage#emulator()}, 128 MiB, kernel + initrd, no disk, one virtio NIC on a bridge,
 * serial console to a file).
 *
 * @param ip4 own IPv4 with prefix length (198.51.100.100/24)
 * @param ip6 own global IPv6 with prefix length
 * @param net6 an address of the guest's routed IPv6 prefix (put on lo in the guest)
 * @param obs4 observer IPv4, obs6 observer IPv6, obsMac observer MAC (spoofed frames go there)
 * @param spoof4 foreign IPv4 source, spoof6 foreign IPv6 source, arp4 address of the forged ARP
 *     reply, spoofMac foreign source MAC
 * @param tcpPorts TCP services the guest offers (comma-separated ports, ucprobe's uc.tcp), or null
 * @param tcpPeer A:port the guest keeps a connection to from boot on (uc.tcppeer, see {@link
 *     TcpPeer}), or null
 */
public record LabGuest(
    String name,
    String uuid,
    String mac,
    String ip4,
    String ip6,
    String net6,
    String obs4,
    String obs6,
    String obsMac,
    String spoof4,
    String spoof6,
    String arp4,
    String spoofMac,
    int intervalMs,
    boolean dad,
    String tcpPorts,
    String tcpPeer) {

  /** A guest without TCP services or connection. */
  public LabGuest(String name, String uuid, String mac, String ip4, String ip6, String net6, String obs4, String obs6,
      String obsMac, String spoof4, String spoof6, String arp4, String spoofMac, int intervalMs, boolean dad) {
    this(name, uuid, mac, ip4, ip6, net6, obs4, obs6, obsMac, spoof4, spoof6, arp4, spoofMac, intervalMs, dad, null, null);
  }

  /**
   * This guest, also serving TCP on {@code ports} (each accepted connection gets "UCT &lt;port&gt;\n",
   * then EOF) and keeping a connection of its own to {@code peer} (A:port), opened at boot.
   */
  public LabGuest withTcp(String ports, String peer) {
    return new LabGuest(name, uuid, mac, ip4, ip6, net6, obs4, obs6, obsMac, spoof4, spoof6, arp4, spoofMac, intervalMs,
        dad, ports, peer);
  }

  /** Probe kinds the guest sends from its own addresses. */
  public static final java.util.List<String> LEGIT = java.util.List.of("legit4", "legit6", "legitnet6");

  /** Probe kinds that a filter must drop. */
  public static final java.util.List<String> SPOOFED = java.util.List.of("spoof4", "spoof6", "spoofarp", "spoofmac");

  /** IPv4 without prefix length. */
  public String ip4Address() {
    return ip4.replaceAll("/.*", "");
  }

  /** IPv6 without prefix length. */
  public String ip6Address() {
    return ip6.replaceAll("/.*", "");
  }

  /** The kernel command line: console on ttyS0 and the uc.* parameters init and ucprobe read. */
  public String cmdline() {
    return "console=ttyS0 quiet panic=-1"
        + " uc.ip4=" + ip4 + " uc.ip6=" + ip6 + " uc.net6=" + net6
        + " uc.obs4=" + obs4 + " uc.obs6=" + obs6 + (obsMac != null ? " uc.obsmac=" + obsMac : "")
        + " uc.spoof4=" + spoof4 + " uc.spoof6=" + spoof6 + " uc.arp4=" + arp4
        + " uc.spoofmac=" + spoofMac + " uc.interval=" + intervalMs + (dad ? "" : " uc.dad=0")
        + (tcpPorts != null ? " uc.tcp=" + tcpPorts : "") + (tcpPeer != null ? " uc.tcppeer=" + tcpPeer : "");
  }

  /**
   * The domain XML.
   *
   * @param metadata extra children of {@code <metadata>} (e.g. our uc:firewall), or null
   * @param console file the serial console is appended to (readable by the test)
   */
  public String domainXml(GuestImage image, String bridge, Path console, String metadata) {
    return "<domain type='qemu'>\n"
        + "  <name>" + name + "</name>\n"
        + "  <uuid>" + uuid + "</uuid>\n"
        + (metadata != null ? "  <metadata>\n" + metadata + "\n  </metadata>\n" : "")
        + "  <memory unit='MiB'>128</memory>\n"
        + "  <vcpu>1</vcpu>\n"
        + "  <os>\n"
        + "    <type arch='x86_64' machine='pc'>hvm</type>\n"
        + "    <kernel>" + image.kernel() + "</kernel>\n"
        + "    <initrd>" + image.initrd() + "</initrd>\n"
        + "    <cmdline>" + cmdline() + "</cmdline>\n"
        + "  </os>\n"
        + "  <on_poweroff>destroy</on_poweroff>\n"
        + "  <on_reboot>destroy</on_reboot>\n"
        + "  <on_crash>destroy</on_crash>\n"
        + "  <devices>\n"
        + "    <emulator>" + image.emulator() + "</emulator>\n"
        + "    <interface type='bridge'>\n"
        + "      <source bridge='" + bridge + "'/>\n"
        + "      <mac address='" + mac + "'/>\n"
        + "      <model type='virtio'/>\n"
        + "    </interface>\n"
        + "    <serial type='file'><source path='" + console + "' append='on'/></serial>\n"
        + "    <video><model type='none'/></video>\n"
        + "    <memballoon model='none'/>\n"
        + "  </devices>\n"
        + "</domain>\n";
  }

  /** Our metadata element for this guest (its MAC, IPv4, IPv6 and routed /64). */
  public String firewallMetadata() {
    return firewallMetadata("");
  }

  /** The same, with {@code extra} (e.g. a uc:ingress element) after the uc:ip elements. */
  public String firewallMetadata(String extra) {
    String prefix = net6.replaceAll("::.*", "::/64");
    return "    <uc:firewall xmlns:uc=\"https://ungleich.ch/uncloud/hook/1\">\n"
        + "      <uc:interface mac=\"" + mac + "\">\n"
        + "        <uc:ip address=\"" + ip4Address() + "\"/>\n"
        + "        <uc:ip address=\"" + ip6Address() + "\"/>\n"
        + "        <uc:ip address=\"" + prefix + "\"/>\n"
        + extra
        + "      </uc:interface>\n"
        + "    </uc:firewall>";
  }

  /**
   * Waits until the guest's init printed its UP line on the console; returns that line.
   *
   * @throws IllegalStateException after timeoutMs, with the console's tail
   */
  public static String awaitUp(Path console, long timeoutMs) {
    long deadline = System.currentTimeMillis() + timeoutMs;
    while (System.currentTimeMillis() < deadline) {
      try {
        if (Files.exists(console)) {
          for (String l : Files.readAllLines(console, java.nio.charset.StandardCharsets.ISO_8859_1)) {
            if (l.contains("UCGUEST UP")) {
              return l.strip();
            }
          }
        }
      } catch (IOException e) {
        // being written
      }
      LibvirtHost.sleep(100);
    }
    throw new IllegalStateException("guest not up after " + timeoutMs + " ms; console:\n" + LibvirtHost.tail(console));
  }
}
