package ch.ungleich.uncloud.hook.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.ungleich.uncloud.hook.nft.ReconcilePlan;
import ch.ungleich.uncloud.hook.state.Owner;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Function;
import org.junit.jupiter.api.Test;

class FingerprintTest {
  static final Desired D = new Desired(List.of(), Set.of("u1", "u2"), Set.of("vnet9"));
  static final Map<String, Owner> R = Map.of("vnet0", new Owner("u1", "52:54:00:00:00:01", "web 1"));
  static final List<String> TAPS = List.of("vnet0", "vnet9");

  static String digest(String script, Desired d, Map<String, Owner> r, Function<String, String> mac) {
    return Fingerprint.inputs("id", script, d, r, TAPS, mac);
  }

  @Test
  void theDigestChangesWithEachInput() {
    Function<String, String> mac = t -> t.equals("vnet0") ? "fe:54:00:00:00:01" : null;
    String base = digest("add table x\n", D, R, mac);
    assertEquals(base, digest("add table x\n", new Desired(List.of(), Set.of("u2", "u1"), Set.of("vnet9")), new HashMap<>(R), mac));
    assertNotEquals(base, Fingerprint.inputs("id2", "add table x\n", D, R, TAPS, mac));
    assertNotEquals(base, digest("add table y\n", D, R, mac));
    assertNotEquals(base, digest("add table x\n", new Desired(List.of(), Set.of("u1"), Set.of("vnet9")), R, mac));
    assertNotEquals(base, digest("add table x\n", new Desired(List.of(), Set.of("u1", "u2"), Set.of()), R, mac));
    assertNotEquals(base, digest("add table x\n", D, Map.of(), mac));
    assertNotEquals(base, digest("add table x\n", D, Map.of("vnet0", new Owner("u2", "52:54:00:00:00:01", "web 1")), mac));
    assertNotEquals(base, digest("add table x\n", D, R, t -> "fe:54:00:00:00:02"));
    assertNotEquals(base, digest("add table x\n", D, R, t -> null));
    // fields cannot run into each other
    assertNotEquals(
        Fingerprint.inputs("a", "b", D, R, TAPS, mac), Fingerprint.inputs("a b", "", D, R, TAPS, mac));
  }

  @Test
  void encodeDecodeRoundTripsAndRejectsAnythingElse() {
    Fingerprint f = new Fingerprint("boot:7:42", "abc", TAPS, List.of(
        new ReconcilePlan.Change("keep", "vnet9", null, "u9", "its\tdomain's \\ metadata\nis invalid"),
        new ReconcilePlan.Change("keep", null, null, null, "set x is not ours; left alone")));
    assertEquals(f, Fingerprint.decode(f.encode()));
    assertNull(Fingerprint.decode(null));
    assertNull(Fingerprint.decode(""));
    assertNull(Fingerprint.decode(f.encode().replace("fingerprint 1", "fingerprint 0")));
    assertNull(Fingerprint.decode(f.encode().substring(0, f.encode().length() - 3)), "a torn write");
    assertNull(Fingerprint.decode("uncloud-hook reconcile fingerprint 1\ninputs abc\n"), "no generation");
  }

  @Test
  void nextIsExactlyOneTransactionInTheSameNamespace() {
    assertTrue(Fingerprint.next("b:7:41", "b:7:42"));
    assertFalse(Fingerprint.next("b:7:41", "b:7:43"), "another transaction besides ours");
    assertFalse(Fingerprint.next("b:7:41", "b:7:41"));
    assertFalse(Fingerprint.next("b:7:41", "b:8:42"), "another namespace");
    assertFalse(Fingerprint.next("b:7:41", "c:7:42"), "another boot");
    assertFalse(Fingerprint.next("b:7:41", null));
    assertFalse(Fingerprint.next(null, "b:7:42"));
  }
}
