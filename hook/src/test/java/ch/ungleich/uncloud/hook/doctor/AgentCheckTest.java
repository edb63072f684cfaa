package ch.ungleich.uncloud.hook.doctor;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.ungleich.uncloud.hook.state.AgentStatus;
import java.util.Map;
import org.junit.jupiter.api.Test;

class AgentCheckTest {
  static final String URI = "qemu:///system";
  static final long NOW = 1_800_000_000_000L;

  static AgentStatus status(boolean connected, String uri, long updated, String error) {
    return new AgentStatus(42, uri, connected, NOW - 60_000, NOW - 50_000, NOW - 10_000, error, updated, Map.of());
  }

  @Test
  void runningConnectedAndFreshPasses() {
    Check c = Checks.agent(status(true, URI, NOW - 1000, null), true, URI, NOW, 30);
    assertEquals(Check.Status.PASS, c.status(), c.line());
    assertTrue(c.found().contains("pid 42") && c.found().contains("last resync"), c.line());
  }

  @Test
  void everyWayOfNotWorkingWarnsWithAFix() {
    Check none = Checks.agent(null, false, URI, NOW, 30);
    Check dead = Checks.agent(status(true, URI, NOW - 1000, null), false, URI, NOW, 30);
    Check down = Checks.agent(status(false, URI, NOW - 1000, "cannot connect to libvirt"), true, URI, NOW, 30);
    Check other = Checks.agent(status(true, "qemu:///session", NOW - 1000, null), true, URI, NOW, 30);
    Check hung = Checks.agent(status(true, URI, NOW - 200_000, null), true, URI, NOW, 30);
    Check fight = Checks.agent(status(true, URI, NOW - 1000, "something keeps deleting table bridge uncloud"), true, URI, NOW, 30);
    for (Check c : new Check[] {none, dead, down, other, hung, fight}) {
      assertEquals(Check.Status.WARN, c.status(), c.line());
      assertTrue(c.fix() != null && !c.fix().isBlank(), c.line());
    }
    assertTrue(none.fix().contains("uncloud-hook agent") && dead.found().contains("pid 42 is gone"), dead.line());
    assertTrue(down.found().contains("not connected") && other.found().contains("qemu:///session"), other.line());
    assertTrue(hung.found().contains("hung") && fight.found().contains("keeps deleting"), fight.line());
  }
}
