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
}
