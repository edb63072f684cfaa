package ch.ungleich.uncloud.hook.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class FightGuardTest {
  @Test
  void fiveDeletionsAreRestoredAtOnceThenTheDelayDoublesUpToTheMaximum() {
    FightGuard g = new FightGuard(5, 10_000, 8_000);
    for (int i = 0; i < 5; i++) {
      assertEquals(0, g.deleted(1000 + i * 100));
    }
    assertEquals(1000, g.deleted(1600));
    assertEquals(2000, g.deleted(1700));
    assertEquals(4000, g.deleted(1800));
    assertEquals(8000, g.deleted(1900));
    assertEquals(8000, g.deleted(2000));
    assertEquals(10, g.recent(2000));
    assertTrue(g.fighting(2000));
    assertFalse(g.fighting(12_001));
  }

  @Test
  void aQuietWindowEndsTheFight() {
    FightGuard g = new FightGuard(2, 10_000, 60_000);
    g.deleted(0);
    g.deleted(1);
    assertEquals(1000, g.deleted(2));
    assertEquals(0, g.deleted(20_000));
    assertEquals(1, g.recent(20_000));
  }
}
