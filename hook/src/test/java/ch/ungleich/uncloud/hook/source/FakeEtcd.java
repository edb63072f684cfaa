package ch.ungleich.uncloud.hook.source;

import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A stand-in for one etcd member's JSON gateway on loopback ({@code /v3/kv/range} of one key,
 * {@code /v3/kv/put}), for unit tests of the client's edge; the lab tests run a real etcd cluster.
 */
public final class FakeEtcd implements AutoCloseable {
  private static final Pattern KEY = Pattern.compile("\"key\":\"([A-Za-z0-9+/=]*)\"");
  private static final Pattern VALUE = Pattern.compile("\"value\":\"([A-Za-z0-9+/=]*)\"");
  public final Map<String, String> kv = new ConcurrentHashMap<>();
  public final AtomicInteger requests = new AtomicInteger();
  /** Non-zero: answer every request with this HTTP status (a member without quorum, say). */
  public volatile int failWith;
  /** Wait this long before answering (a hung member). */
  public volatile long delayMillis;
  private final HttpServer server;

  public FakeEtcd() throws IOException {
    server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
    server.createContext("/v3/kv/", x -> {
      requests.incrementAndGet();
      String body = new String(x.getRequestBody().readAllBytes(), StandardCharsets.UTF_8);
      String answer;
      int status = 200;
      try {
        Thread.sleep(delayMillis);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
      Matcher k = KEY.matcher(body);
      String key = k.find() ? new String(Base64.getDecoder().decode(k.group(1)), StandardCharsets.UTF_8) : "";
      if (failWith != 0) {
        status = failWith;
        answer = "{\"error\":\"etcdserver: request timed out\",\"code\":14,\"message\":\"etcdserver: request timed out\"}";
      } else if (x.getRequestURI().getPath().equals("/v3/kv/put")) {
        Matcher v = VALUE.matcher(body);
        v.find();
        kv.put(key, new String(Base64.getDecoder().decode(v.group(1)), StandardCharsets.UTF_8));
        answer = "{\"header\":{\"revision\":\"7\"}}";
      } else if (kv.containsKey(key)) {
        answer = "{\"header\":{\"revision\":\"7\"},\"kvs\":[{\"key\":\"" + b64(key) + "\",\"mod_revision\":\"7\",\"value\":\""
            + b64(kv.get(key)) + "\"}],\"count\":\"1\"}";
      } else {
        answer = "{\"header\":{\"revision\":\"7\"}}";
      }
      byte[] b = answer.getBytes(StandardCharsets.UTF_8);
      x.sendResponseHeaders(status, b.length);
      try (OutputStream o = x.getResponseBody()) {
        o.write(b);
      }
    });
    server.start();
  }

  public String endpoint() {
    return "http://127.0.0.1:" + server.getAddress().getPort();
  }

  private static String b64(String s) {
    return Base64.getEncoder().encodeToString(s.getBytes(StandardCharsets.UTF_8));
  }

  @Override
  public void close() {
    server.stop(0);
  }
}
