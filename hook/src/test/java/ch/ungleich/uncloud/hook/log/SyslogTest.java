package ch.ungleich.uncloud.hook.log;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The datagram path itself is proven against a real socket in tests/ (SyslogTest, as root). */
class SyslogTest {
  @Test
  void priorityIsDaemonFacilityPlusSeverityAndOneLine() {
    assertEquals("<27>web01: bad\n", Syslog.frame(Syslog.ERR, "web01: bad"));
    assertEquals("<28>a b\n", Syslog.frame(Syslog.WARNING, "a\nb"));
    assertEquals("<30>web01 start begin: filtering\n", Syslog.frame(Syslog.INFO, "web01 start begin: filtering"));
  }

  @Test
  void noSocketMeansFileOnlySilently(@TempDir Path tmp) throws Exception {
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    Log log = new Log(new PrintStream(err, true, StandardCharsets.UTF_8), new Syslog(tmp.resolve("no-such-log")));
    log.toFile(tmp.resolve("log").toString());
    log.error("web01 net0 52:54:00:aa:bb:01: refused");
    log.info("web01 start begin: filtering");
    assertEquals("uncloud-hook: web01 net0 52:54:00:aa:bb:01: refused\n", err.toString(StandardCharsets.UTF_8));
    String file = Files.readString(tmp.resolve("log"));
    assertTrue(file.contains(" error web01 net0 52:54:00:aa:bb:01: refused\n") && file.contains(" info web01 start"), file);
  }

  @Test
  void loggerGetsThisProcessAsIdAndTheTag() {
    Syslog s = new Syslog(Path.of("/dev/log"));
    assertTrue(s.command().containsAll(java.util.List.of("-t", "uncloud-hook", "-u", "/dev/log", "--prio-prefix",
        "--id=" + ProcessHandle.current().pid())), s.command().toString());
  }

  /**
   * The agent's logger child killed: the next line starts a new one and reaches the socket (a real Unix
   * datagram socket bound by python3, logger(1) writing to it); killed again and again, the restarts
   * stop at the bound instead of forking a logger per line.
   */
  @Test
  void aKilledLoggerIsStartedAgainWithinABound(@TempDir Path tmp) throws Exception {
    Path sock = tmp.resolve("log");
    Process rx = new ProcessBuilder("/usr/bin/python3", "-c", String.join("\n",
        "import socket, sys",
        "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)",
        "s.bind(sys.argv[1])",
        "print('READY', flush=True)",
        "s.settimeout(3)",
        "try:",
        "    while True: print(s.recv(65536).decode(), flush=True)",
        "except socket.timeout: pass"), sock.toString()).redirectError(ProcessBuilder.Redirect.INHERIT).start();
    java.io.BufferedReader in = new java.io.BufferedReader(new java.io.InputStreamReader(rx.getInputStream(), StandardCharsets.UTF_8));
    assertEquals("READY", in.readLine());
    Syslog s = new Syslog(sock);
    s.send(Syslog.INFO, "before the kill");
    long first = s.loggerPid();
    assertTrue(first > 0, "a logger runs");
    java.util.List<String> got = new java.util.ArrayList<>();
    got.add(in.readLine()); // it arrived: logger has sent it before it is killed
    kill(first);
    s.send(Syslog.WARNING, "after the kill");
    long second = s.loggerPid();
    assertTrue(second > 0 && second != first, "a new logger: " + first + " -> " + second);
    s.close();
    for (String l; (l = in.readLine()) != null; ) {
      got.add(l);
    }
    rx.waitFor();
    assertEquals(2, got.size(), got.toString());
    assertTrue(got.get(0).startsWith("<30>") && got.get(0).endsWith("uncloud-hook[" + ProcessHandle.current().pid() + "]: before the kill"), got.toString());
    assertTrue(got.get(1).startsWith("<28>") && got.get(1).endsWith(": after the kill"), got.toString());

    Files.createFile(tmp.resolve("quiet")); // a socket path that exists; nothing reads it (logger: --socket-errors=off)
    Syslog t = new Syslog(tmp.resolve("quiet"));
    int started = 0;
    for (int i = 0; i < Syslog.MAX_RESTARTS + 3; i++) {
      t.send(Syslog.INFO, "line " + i);
      long pid = t.loggerPid();
      if (pid > 0) {
        started++;
        kill(pid);
      }
    }
    assertEquals(Syslog.MAX_RESTARTS + 1, started, "the first start and " + Syslog.MAX_RESTARTS + " restarts per window, then off");
    t.send(Syslog.INFO, "still off");
    assertEquals(-1, t.loggerPid(), "no logger forked beyond the bound");
    t.close();
  }

  private static void kill(long pid) throws Exception {
    ProcessHandle h = ProcessHandle.of(pid).orElseThrow();
    h.destroyForcibly();
    h.onExit().get(5, java.util.concurrent.TimeUnit.SECONDS);
  }
}
