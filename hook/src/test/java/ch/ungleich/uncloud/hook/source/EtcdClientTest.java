package ch.ungleich.uncloud.hook.source;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.ungleich.uncloud.hook.ExitCodes;
import ch.ungleich.uncloud.hook.UncloudException;
import ch.ungleich.uncloud.hook.config.Config;
import java.io.IOException;
import java.net.ServerSocket;
import org.junit.jupiter.api.Test;

class EtcdClientTest {
  static EtcdClient client(String endpoints, String timeout) {
    return new EtcdClient(Config.parse("source = etcd\netcd_endpoints = " + endpoints + "\netcd_timeout = " + timeout, "t").etcd());
  }

  /** A loopback port nobody listens on: connection refused at once. */
  static String closedEndpoint() throws IOException {
    try (ServerSocket s = new ServerSocket(0)) {
      return "http://127.0.0.1:" + s.getLocalPort();
    }
  }

  @Test
  void getsPutsAndTellsMissingKeys() throws IOException {
    try (FakeEtcd etcd = new FakeEtcd()) {
      EtcdClient c = client(etcd.endpoint(), "1");
      assertNull(c.get("distributed-firewall/vm/a"));
      assertEquals(7, c.put("distributed-firewall/vm/a", "{\"ipv4\": [\"192.0.2.1\"]}"));
      assertEquals("{\"ipv4\": [\"192.0.2.1\"]}", c.get("distributed-firewall/vm/a"));
    }
  }

  @Test
  void triesTheNextEndpointOnRefusalErrorAndTimeout() throws IOException {
    try (FakeEtcd good = new FakeEtcd(); FakeEtcd noQuorum = new FakeEtcd(); FakeEtcd hung = new FakeEtcd()) {
      good.kv.put("k", "v");
      noQuorum.failWith = 503;
      hung.delayMillis = 3000;
      long t0 = System.nanoTime();
      EtcdClient c = client(closedEndpoint() + "," + noQuorum.endpoint() + "," + hung.endpoint() + "," + good.endpoint(), "0.5");
      assertEquals("v", c.get("k"));
      long ms = (System.nanoTime() - t0) / 1_000_000;
      assertTrue(ms >= 450 && ms < 2500, ms + " ms: the hung member costs one timeout, no more");
      assertEquals(1, noQuorum.requests.get());
    }
  }

  @Test
  void noEndpointAnsweringIsOneLineNamingEachAndFailsFastAfterwards() throws IOException {
    try (FakeEtcd noQuorum = new FakeEtcd()) {
      noQuorum.failWith = 503;
      String closed = closedEndpoint();
      EtcdClient c = client(closed + "," + noQuorum.endpoint(), "1");
      UncloudException e = assertThrows(UncloudException.class, () -> c.get("distributed-firewall/vm/x"));
      assertEquals(ExitCodes.SOURCE_UNAVAILABLE, e.exitCode());
      assertEquals("etcd key distributed-firewall/vm/x: no endpoint answered (" + closed + ": Connection refused; "
          + noQuorum.endpoint() + ": HTTP 503: etcdserver: request timed out)", e.getMessage());
      assertThrows(UncloudException.class, () -> c.get("distributed-firewall/vm/y"));
      assertEquals(1, noQuorum.requests.get(), "the second call did not ask again");
    }
  }
}
