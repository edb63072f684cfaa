package ch.ungleich.uncloud.hook.source;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

/** The lines of etcd 3.4's JSON watch stream, as captured from a real member (curl -N POST /v3/watch). */
class WatchMessageTest {
  static final String HEADER = "\"header\":{\"cluster_id\":\"324952591200643719\",\"member_id\":\"3319814642761637952\","
      + "\"revision\":\"5\",\"raft_term\":\"2\"}";

  @Test
  void created() {
    WatchMessage m = WatchMessage.parse("{\"result\":{" + HEADER + ",\"created\":true}}");
    assertTrue(m.created());
    assertEquals(5, m.revision());
    assertEquals(List.of(), m.events());
    assertNull(m.error());
  }

  @Test
  void putsAndADeletion() {
    WatchMessage m = WatchMessage.parse("{\"result\":{" + HEADER + ",\"events\":[{\"kv\":{\"key\":\"cC9h\",\"create_revision\":\"2\","
        + "\"mod_revision\":\"2\",\"version\":\"1\",\"value\":\"MQ==\"}},{\"kv\":{\"key\":\"cC9i\",\"create_revision\":\"3\","
        + "\"mod_revision\":\"3\",\"version\":\"1\",\"value\":\"Mg==\"}},{\"type\":\"DELETE\",\"kv\":{\"key\":\"cC9i\","
        + "\"mod_revision\":\"5\"}}]}}");
    assertEquals(List.of(new WatchMessage.Event("p/a", "1", 2), new WatchMessage.Event("p/b", "2", 3),
        new WatchMessage.Event("p/b", null, 5)), m.events());
    assertEquals(5, m.revision());
  }

  @Test
  void anEmptyValueIsNotADeletion() {
    WatchMessage m = WatchMessage.parse("{\"result\":{" + HEADER + ",\"events\":[{\"kv\":{\"key\":\"cC9h\",\"mod_revision\":\"6\"}}]}}");
    assertEquals(List.of(new WatchMessage.Event("p/a", "", 6)), m.events());
  }

  @Test
  void compacted() {
    WatchMessage m = WatchMessage.parse("{\"result\":{\"header\":{\"cluster_id\":\"1\",\"member_id\":\"2\",\"raft_term\":\"2\"},"
        + "\"canceled\":true,\"compact_revision\":\"4\"}}");
    assertTrue(m.canceled());
    assertEquals(4, m.compactRevision());
    assertEquals(0, m.revision());
  }

  @Test
  void anError() {
    WatchMessage m = WatchMessage.parse("{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":\"etcdserver: no leader\","
        + "\"http_status\":\"Service Unavailable\"}}");
    assertEquals("etcdserver: no leader", m.error());
  }

  @Test
  void notAWatchMessage() {
    assertThrows(IllegalArgumentException.class, () -> WatchMessage.parse("{\"foo\":1}"));
    assertThrows(IllegalArgumentException.class, () -> WatchMessage.parse("<html>"));
    assertThrows(IllegalArgumentException.class, () -> WatchMessage.parse("{\"result\":{\"events\":[{\"kv\":{}}]}}"));
  }
}
