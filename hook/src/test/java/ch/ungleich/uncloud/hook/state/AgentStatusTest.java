package ch.ungleich.uncloud.hook.state;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class AgentStatusTest {
  @TempDir Path dir;

  @Test
  void roundTripAndAbsent() throws Exception {
    assertTrue(AgentStatus.read(dir.toString()).isEmpty());
    AgentStatus s = new AgentStatus(42, "qemu:///system", true, 1, 2, 3, null, 4,
        Map.of("u1", new AgentStatus.Applied("web01", AgentStatus.digest("<firewall/>"), 5, null)));
    s.write(dir.toString());
    assertEquals(s, AgentStatus.read(dir.toString()).orElseThrow());
    assertTrue(Files.readString(dir.resolve(AgentStatus.FILE)).contains("\"last_resync_ms\" : 3"));
    assertNotEquals(AgentStatus.digest(""), AgentStatus.digest("<firewall/>"));
    assertEquals(AgentStatus.digest(null), AgentStatus.digest(""));
  }
}
