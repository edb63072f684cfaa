package ch.ungleich.uncloud.tests.lab;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;

/**
 * Real connections between the network-namespace VMs of a {@link NetnsLab} for the inbound-rule tests
 * of both backends (InboundLabTest, NwfilterInboundLabTest): TCP connects, UDP and ICMP exchanges and
 * listeners by resource {@code lab/inbound.py}, each answering one line ({@code OK …} or {@code FAIL …}).
 */
public final class InboundProbes {
  private final NetnsLab lab;
  private final List<Process> procs = new ArrayList<>();

  public InboundProbes(NetnsLab lab) {
    this.lab = lab;
  }

  /** A one-NIC domain whose metadata gives the NIC {@code ips} and {@code rules} (uc:ingress/uc:egress XML). */
  public static String domain(String name, NetnsLab.Port p, String rules, boolean trusted, boolean withTarget, String... ips) {
    StringBuilder m = new StringBuilder("<uc:firewall xmlns:uc='https://ungleich.ch/uncloud/hook/1'><uc:interface mac='"
        + p.mac() + "'" + (trusted ? " trusted='true'" : "") + ">");
    for (String ip : ips) {
      m.append("<uc:ip address='").append(ip).append("'/>");
    }
    m.append(rules).append("</uc:interface></uc:firewall>");
    return "<domain type='qemu'><name>" + name + "</name><uuid>" + UUID.nameUUIDFromBytes(name.getBytes()) + "</uuid>"
        + "<metadata>" + m + "</metadata><devices><interface type='bridge'><mac address='" + p.mac() + "'/>"
        + "<source bridge='br0'/>" + (withTarget ? "<target dev='" + p.bridgePort() + "'/>" : "")
        + "<alias name='net0'/></interface></devices></domain>";
  }

  public String tcp(String netns, String src, String dst, int port) {
    return run(netns, "tcp", src, dst, String.valueOf(port));
  }

  public String udp(String netns, String src, int sport, String dst, int port) {
    return run(netns, "udp", src, String.valueOf(sport), dst, String.valueOf(port));
  }

  public String ping(String netns, String src, String dst) {
    return run(netns, "ping", src, dst);
  }

  /** One run of the probe script in {@code netns}; its answer line. */
  public String run(String netns, String... args) {
    List<String> cmd = new ArrayList<>(List.of(FrameTool.PYTHON, script()));
    cmd.addAll(List.of(args));
    return lab.execIn(netns, null, Duration.ofSeconds(20), cmd.toArray(String[]::new)).ok().out().strip();
  }

  /** A listener in {@code netns} on the given addresses and comma-separated TCP and UDP ports, until {@link #close}. */
  public void listen(String netns, String a4, String a6, String tcp, String udp) {
    try {
      Process l = new ProcessBuilder("ip", "netns", "exec", netns, FrameTool.PYTHON, script(), "listen", a4, a6, tcp, udp)
          .redirectErrorStream(true).start();
      procs.add(l);
      String line = new BufferedReader(new InputStreamReader(l.getInputStream(), StandardCharsets.UTF_8)).readLine();
      assertEquals("READY", line, "listener in " + netns);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  public void addr(NetnsLab.Port p, String... cidrs) {
    for (String c : cidrs) {
      lab.exec(p.netns(), "ip", "addr", "add", c, "dev", "eth0", "nodad").ok();
    }
  }

  /** net.bridge.bridge-nf-call-iptables and -ip6tables in the hypervisor namespace. */
  public void bridgeNfCall(int v) {
    lab.exec(lab.hv(), "sh", "-ec", "echo " + v + " > /proc/sys/net/bridge/bridge-nf-call-iptables;"
        + " echo " + v + " > /proc/sys/net/bridge/bridge-nf-call-ip6tables").ok();
  }

  /** Stops the listeners. */
  public void close() {
    procs.forEach(Process::destroyForcibly);
    procs.clear();
  }

  public static String script() {
    try {
      return Path.of(InboundProbes.class.getResource("/lab/inbound.py").toURI()).toString();
    } catch (URISyntaxException e) {
      throw new IllegalStateException(e);
    }
  }
}
