package ch.ungleich.uncloud.tests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.ungleich.uncloud.tests.lab.DomainXml;
import ch.ungleich.uncloud.tests.lab.InstalledLauncher;
import ch.ungleich.uncloud.tests.lab.NetnsLab;
import ch.ungleich.uncloud.tests.lab.Proc;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * Issue 14: the hook's log lines reach the system log. A real Unix datagram socket (what journald and
 * rsyslog bind at /dev/log) is bound by a receiver, and the hook runs as libvirt runs it, in the lab's
 * hypervisor netns and in a private mount namespace whose /dev/log is that socket
 * (resources/lab/devlog.sh). A refused start must arrive as priority err (daemon.err = 27) naming the
 * domain, the NIC's MAC and the reason; an applied one as info (30) with NIC, MAC, tap and its time.
 */
class SyslogTest {
  private static final Path RES = Path.of("src/test/resources/lab").toAbsolutePath();
  /** RFC 3164 as logger(1) writes to a local socket: {@code <PRI>Mmm dd hh:mm:ss uncloud-hook[PID]: text}. */
  private static final Pattern LINE =
      Pattern.compile("<(\\d+)>[A-Z][a-z]{2} [ \\d]\\d \\d\\d:\\d\\d:\\d\\d uncloud-hook\\[(\\d+)\\]: (.*)");

  @Test
  void refusedAndAppliedStartsReachDevLogWithTheirPriority() throws Exception {
    DomainXml good = DomainXml.domain("udc-sl-good").nic("52:54:00:5e:00:01", "vnet0", "192.0.2.41");
    DomainXml bad = DomainXml.domain("udc-sl-bad").nic("52:54:00:5e:00:02", "vnet0", "192.0.2.1/24");
    try (NetnsLab lab = NetnsLab.create("sl", List.of("52:54:00:5e:00:01"))) {
      lab.config();
      Process rx = new ProcessBuilder("/usr/bin/python3", RES.resolve("syslog_receiver.py").toString(),
          lab.dir().resolve("log").toString(), "5").redirectError(ProcessBuilder.Redirect.INHERIT).start();
      BufferedReader in = new BufferedReader(new InputStreamReader(rx.getInputStream(), StandardCharsets.UTF_8));
      assertEquals("READY", in.readLine());

      Proc.Result refused = hook(lab, bad, "start");
      assertEquals(1, refused.exit(), refused.describe());
      assertEquals("", refused.out(), "never on stdout");
      Proc.Result applied = hook(lab, good, "start");
      assertEquals(0, applied.exit(), applied.describe());
      assertEquals("", applied.out(), "never on stdout");
      assertTrue(lab.nft("list", "chain", "bridge", "uncloud", "port-vnet0").exit() == 0, "rules applied: " + lab.ruleset());

      List<String> got = new ArrayList<>();
      for (String l; (l = in.readLine()) != null; ) {
        got.add(l);
      }
      rx.waitFor();
      String all = String.join("\n", got);
      assertEquals(2, got.size(), all);

      var err = LINE.matcher(got.get(0));
      assertTrue(err.matches(), all);
      assertEquals("27", err.group(1), "daemon.err: " + all);
      assertEquals("udc-sl-bad net0 52:54:00:5e:00:02: '192.0.2.1/24' has host bits set; the network is 192.0.2.0/24",
          err.group(3));

      var info = LINE.matcher(got.get(1));
      assertTrue(info.matches(), all);
      assertEquals("30", info.group(1), "daemon.info: " + all);
      assertTrue(info.group(3).matches("udc-sl-good start begin: filtering net0 52:54:00:5e:00:01 vnet0 filter \\(\\d+ ms\\)"),
          info.group(3));
      // the file has the same lines
      assertTrue(lab.hookLog().contains(err.group(3)) && lab.hookLog().contains(info.group(3)), lab.hookLog());
    }
  }

  /** No /dev/log in the namespace: the hook logs to its file and says nothing about syslog on stderr. */
  @Test
  void withoutDevLogOnlyTheFile() {
    DomainXml bad = DomainXml.domain("udc-sl-bad").nic("52:54:00:5e:00:02", "vnet0", "192.0.2.1/24");
    try (NetnsLab lab = NetnsLab.create("sn", List.of("52:54:00:5e:00:02"))) {
      lab.config();
      Proc.Result r = hook(lab, bad, "start"); // no receiver: lab.dir()/log is no socket, so no /dev/log
      assertEquals("", r.out());
      assertEquals(1, r.exit(), r.describe());
      assertEquals("uncloud-hook: udc-sl-bad net0 52:54:00:5e:00:02: '192.0.2.1/24' has host bits set; the network is"
          + " 192.0.2.0/24\n", r.err());
      assertTrue(lab.hookLog().contains(" error udc-sl-bad net0 52:54:00:5e:00:02: "), lab.hookLog());
    }
  }

  private static Proc.Result hook(NetnsLab lab, DomainXml dom, String op) {
    // as NetnsLab.hook runs it (libvirt's environment, the launcher's JVM flags), inside devlog.sh
    List<String> argv = new ArrayList<>(List.of("sh", RES.resolve("devlog.sh").toString(), lab.dir().toString(),
        "env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", "UNCLOUD_HOOK_CONFIG=" + lab.configFile(),
        Path.of(System.getProperty("java.home"), "bin", "java").toString()));
    argv.addAll(InstalledLauncher.jvmFlags());
    argv.addAll(List.of("-jar", NetnsLab.jar().toString(), "hook", dom.name(), op, "begin", "-"));
    return lab.execIn(lab.hv(), dom.running(), Duration.ofSeconds(90), argv.toArray(String[]::new));
  }
}
