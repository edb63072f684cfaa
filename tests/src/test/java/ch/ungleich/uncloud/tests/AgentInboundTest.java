package ch.ungleich.uncloud.tests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.ungleich.uncloud.tests.lab.FrameTool;
import ch.ungleich.uncloud.tests.lab.LabGuest;
import ch.ungleich.uncloud.tests.lab.LibvirtHost;
import ch.ungleich.uncloud.tests.lab.TwoHostLab;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.TestMethodOrder;

/**
 * Issues 13 and 17 together: the agent keeps the inbound rules (uc:ingress) between hook calls, shown
 * with real TCP connections. A private libvirtd with the installed hook, a real guest with TCP
 * listeners (7001, 7002: the lab guest's init runs busybox httpd on them), a client on the bridge (the observer's namespace, through
 * br_netfilter and the inet forward hook, as any other host on the segment), the agent as a process.
 * The guest starts with {@code uc:ingress} allowing tcp 7001 only.
 *
 * <ul>
 *   <li>a live metadata change that adds an allow for 7002 opens it within 1 s; removing it closes it
 *       within 1 s; 7001 stays open throughout;
 *   <li>{@code nft flush ruleset}, {@code nft delete table inet uncloud-inbound} and {@code nft delete
 *       table bridge uncloud-inbound}: within 1 s 7002 is refused again and 7001 connects again.
 * </ul>
 *
 * <p>"Refused" is a connection attempt that gets no answer (the SYN is dropped), next to one on the
 * other port that connects: each closed port is shown open at another moment, so a listener that is
 * not there cannot pass for a filter.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class AgentInboundTest {
  static final String NS_URI = "https://ungleich.ch/uncloud/hook/1";
  static final long WITHIN_MS = 1000;
  TwoHostLab lab;
  LibvirtHost a;
  LabGuest guest;
  Path jar;
  Process agent;
  Path agentErr;
  String client;

  /**
   * Polls connections from the client to {@code dst:port} (each attempt 150 ms) until WANT (open or
   * closed) holds for three attempts in a row; prints the ms from SINCE (epoch ms) to the start of the
   * first of them, or TIMEOUT with the last result.
   */
  static final String POLL = String.join("\n",
      "import socket, sys, time",
      "dst, port, want, since, limit = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4]) / 1000, float(sys.argv[5])",
      "def attempt():",
      "    s = socket.socket(); s.settimeout(0.15)",
      "    try:",
      "        s.connect((dst, port)); return 'open'",
      "    except OSError:",
      "        return 'closed'",
      "    finally:",
      "        s.close()",
      "first, row, last = None, 0, None",
      "while time.time() < since + limit:",
      "    t = time.time(); last = attempt()",
      "    if last == want:",
      "        first = t if row == 0 else first; row += 1",
      "        if row == 3:",
      "            print('%.0f' % ((first - since) * 1000)); sys.exit(0)",
      "    else:",
      "        row = 0",
      "        if last == 'closed' and time.time() - t < 0.14: time.sleep(0.14 - (time.time() - t))",
      "print('TIMEOUT ' + str(last))");

  static String metadata(LabGuest g, boolean with7002) {
    return g.firewallMetadata().replace("</uc:interface>",
        "  <uc:ingress><uc:allow protocol=\"tcp\" port=\"7001\"/>"
            + (with7002 ? "<uc:allow protocol=\"tcp\" port=\"7002\"/>" : "") + "</uc:ingress>\n      </uc:interface>");
  }

  @BeforeAll
  void setUp() throws IOException {
    jar = Path.of(System.getProperty("uncloud.jar"));
    assertTrue(Files.isRegularFile(jar), "built hook jar " + jar + " (mvn package first)");
    lab = TwoHostLab.create("uai");
    try {
      a = lab.a();
      a.installUncloudHook(jar, Map.of("backend", "nft", "agent_resync", "30"));
      // bridged IP through the inet hooks: where uc:ingress decides (br_netfilter)
      a.exec("sh", "-ec", "echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables;"
          + " echo 1 > /proc/sys/net/bridge/bridge-nf-call-ip6tables").check();
      a.start();
      guest = lab.guest(500);
      String xml = guest.domainXml(lab.image(), TwoHostLab.BRIDGE, lab.console(guest), metadata(guest, false));
      Path f = lab.dir().resolve(guest.name() + ".xml");
      Files.writeString(f, xml);
      a.virsh("define", f.toString()).check();
      a.virsh("start", guest.name()).check();
      LabGuest.awaitUp(lab.console(guest), 90_000);
      client = "uai-obs";
      startAgent();
    } catch (RuntimeException | IOException e) {
      tearDown();
      throw e;
    }
  }

  void startAgent() throws IOException {
    agentErr = lab.dir().resolve("agent.err");
    ProcessBuilder pb = new ProcessBuilder("ip", "netns", "exec", a.netns(), "env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
        "UNCLOUD_HOOK_CONFIG=" + a.hookConfigPath(), LibvirtHost.currentJava().toString(),
        "-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-XX:-UsePerfData", "-jar", jar.toString(),
        "agent", "--connect", a.uri());
    pb.redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.appendTo(agentErr.toFile()));
    agent = pb.start();
    awaitLog("connected: ", 60_000);
  }

  @AfterAll
  void tearDown() {
    if (agent != null) {
      agent.destroy();
      try {
        agent.waitFor();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
    if (lab != null) {
      lab.close();
    }
  }

  @Test
  @Order(1)
  void aLiveIngressChangeOpensAndClosesAPortWithinOneSecond() {
    long t0 = System.currentTimeMillis();
    // the guest's ARP and listeners may still be settling: 7001 within 30 s
    assertTrue(poll(7001, "open", t0, 30) >= 0, "7001 (allowed) connects");
    assertTrue(poll(7002, "closed", System.currentTimeMillis(), 5) >= 0, "7002 (not allowed) is refused\n" + ruleset());

    a.virsh("metadata", guest.name(), "--uri", NS_URI, "--key", "uc", "--live", "--set", plain(metadata(guest, true))).check();
    long set = System.currentTimeMillis();
    long opened = poll(7002, "open", set, 5);
    report("uc:ingress allow tcp 7002 added live: 7002 connects %d ms after virsh returned", opened);
    assertTrue(opened >= 0 && opened <= WITHIN_MS, "7002 opens within 1 s: " + opened + " ms\n" + agentLog());
    assertTrue(poll(7001, "open", System.currentTimeMillis(), 5) >= 0, "7001 stays open");

    a.virsh("metadata", guest.name(), "--uri", NS_URI, "--key", "uc", "--live", "--set", plain(metadata(guest, false))).check();
    set = System.currentTimeMillis();
    long closed = poll(7002, "closed", set, 5);
    report("the allow removed live: 7002 refused %d ms after virsh returned", closed);
    assertTrue(closed >= 0 && closed <= WITHIN_MS, "7002 closes within 1 s: " + closed + " ms\n" + agentLog());
    assertTrue(poll(7001, "open", System.currentTimeMillis(), 5) >= 0, "7001 stays open");
  }

  @Test
  @Order(2)
  void lostInboundTablesComeBackWithinOneSecond() {
    String[][] losses = {
      {"nft", "flush", "ruleset"},
      {"nft", "delete", "table", "inet", "uncloud-inbound"},
      {"nft", "delete", "table", "bridge", "uncloud-inbound"},
    };
    for (String[] loss : losses) {
      LibvirtHost.sleep(300);
      long t0 = System.currentTimeMillis();
      a.exec(loss).check();
      // both at once: each measures from the loss, not from the other's end
      Process p1 = startPoll(7002, "closed", t0, 5);
      Process p0 = startPoll(7001, "open", t0, 5);
      long refused = await(p1, 7002, "closed");
      long connects = await(p0, 7001, "open");
      report("%s: 7002 refused again %d ms, 7001 connects %d ms after it", String.join(" ", loss), refused, connects);
      assertTrue(refused >= 0 && refused <= WITHIN_MS, String.join(" ", loss) + ": 7002 refused within 1 s: " + refused
          + " ms\n" + ruleset() + agentLog());
      assertTrue(connects >= 0 && connects <= WITHIN_MS, String.join(" ", loss) + ": 7001 connects within 1 s: " + connects
          + " ms\n" + ruleset() + agentLog());
      assertTrue(a.exec("nft", "list", "table", "inet", "uncloud-inbound").check().out().contains("7001"), ruleset());
    }
    agentLog().lines().filter(l -> l.contains(" deleted")).forEach(l -> report("agent: %s", l));
  }

  // ------------------------------------------------------------------ helpers

  /** The ms from {@code sinceMs} until {@code port} was {@code want} (three attempts in a row); -1 if not within limitS. */
  long poll(int port, String want, long sinceMs, int limitS) {
    return await(startPoll(port, want, sinceMs, limitS), port, want);
  }

  Process startPoll(int port, String want, long sinceMs, int limitS) {
    try {
      return new ProcessBuilder("ip", "netns", "exec", client, FrameTool.PYTHON, "-c", POLL, guest.ip4Address(),
          String.valueOf(port), want, String.valueOf(sinceMs), String.valueOf(limitS)).redirectErrorStream(true).start();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  long await(Process p, int port, String want) {
    try {
      String out = new String(p.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8).strip();
      p.waitFor();
      if (p.exitValue() != 0 || out.startsWith("TIMEOUT") || out.isEmpty()) {
        report("port %d not %s in time: %s", port, want, out);
        return -1;
      }
      return Long.parseLong(out);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }

  static String plain(String md) {
    return md.replace("uc:", "").replace(" xmlns:uc=\"" + NS_URI + "\"", "");
  }

  String ruleset() {
    return a.exec("nft", "list", "ruleset").out();
  }

  String agentLog() {
    try {
      return Files.exists(agentErr) ? Files.readString(agentErr) : "";
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  void awaitLog(String needle, long timeoutMs) {
    long deadline = System.currentTimeMillis() + timeoutMs;
    while (System.currentTimeMillis() < deadline) {
      if (agentLog().contains(needle)) {
        return;
      }
      if (agent != null && !agent.isAlive()) {
        throw new AssertionError("agent exited " + agent.exitValue() + ":\n" + agentLog());
      }
      LibvirtHost.sleep(50);
    }
    throw new AssertionError("no '" + needle + "' in the agent's log within " + timeoutMs + " ms:\n" + agentLog());
  }

  static void report(String fmt, Object... args) {
    System.out.println("[agent-inbound] " + String.format(fmt, args));
  }
}
