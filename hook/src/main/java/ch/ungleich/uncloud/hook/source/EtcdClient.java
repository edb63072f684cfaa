package ch.ungleich.uncloud.hook.source;

import ch.ungleich.uncloud.hook.ExitCodes;
import ch.ungleich.uncloud.hook.UncloudException;
import ch.ungleich.uncloud.hook.config.EtcdSettings;
import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.HttpURLConnection;
import java.net.Proxy;
import java.net.SocketTimeoutException;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.security.spec.PKCS8EncodedKeySpec;
import java.util.ArrayList;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import javax.net.ssl.HttpsURLConnection;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLSocketFactory;
import javax.net.ssl.TrustManagerFactory;

/**
 * etcd v3's JSON gateway ({@code POST /v3/kv/range}, {@code /v3/kv/put}; keys and values base64) over
 * the JDK's {@link HttpURLConnection}: the edge between {@code source = etcd} and the cluster.
 *
 * <p>Why not {@code java.net.http.HttpClient} or a gRPC stack: the hook runs three to four times per
 * VM start and its bar is 2x an empty JVM. Measured on this project's 2-core host, one range request
 * costs ~65 ms of a call with {@code HttpURLConnection} and ~450 ms with {@code HttpClient} (its
 * selector thread, executor and HTTP/2 machinery), both with a CDS archive; a gRPC client brings Netty
 * or OkHttp and protobuf, more again. A raw socket saved nothing over {@code HttpURLConnection}.
 *
 * <p>Endpoints are tried in order; a connection failure, a timeout or an HTTP error moves to the next.
 * Reads are etcd's default, linearizable: a member cut off from the quorum answers with an error
 * rather than stale addresses, and the next member is asked. When every endpoint failed, the client
 * fails fast for the rest of the process (a batch of 200 reconnects must not wait 200 times).
 * Failures are {@link UncloudException}s with {@link ExitCodes#SOURCE_UNAVAILABLE} naming each
 * endpoint and what went wrong.
 */
public final class EtcdClient {
  private static final JsonFactory JSON = new JsonFactory();
  private final EtcdSettings settings;
  private SSLSocketFactory tls;
  private volatile UncloudException down;

  public EtcdClient(EtcdSettings settings) {
    this.settings = settings;
  }

  /** The value of {@code key}, null when there is no such key. */
  public String get(String key) {
    return range(key, null, 1).kvs().get(key);
  }

  /** Every key starting with {@code prefix} with its value, in key order. */
  public Map<String, String> list(String prefix) {
    return range(prefix, rangeEnd(prefix), 0).kvs();
  }

  /**
   * Every key under {@code prefix} and the revision of the store they were read at (the agent's full
   * read; its watch resumes from the next revision). Unlike the hook's reads, a failure here is not
   * remembered: the agent retries.
   */
  public Range snapshot(String prefix) {
    down = null;
    return range(prefix, rangeEnd(prefix), 0);
  }

  /**
   * The keys under a prefix at one revision of the store.
   *
   * @param revision the store's revision the answer reflects (the header's)
   * @param kvs key to value, in key order
   */
  public record Range(long revision, Map<String, String> kvs) {}

  /** The end of the key range of every key starting with {@code prefix} (etcd's {@code range_end}). */
  public static String rangeEnd(String prefix) {
    byte[] end = prefix.getBytes(StandardCharsets.UTF_8).clone();
    end[end.length - 1]++;
    return new String(end, StandardCharsets.UTF_8);
  }

  /** Writes {@code value} to {@code key}; returns the new revision. */
  public long put(String key, String value) {
    String body = "{\"key\":\"" + b64(key) + "\",\"value\":\"" + b64(value) + "\"}";
    String answer = post("/v3/kv/put", body, "put " + key);
    try (JsonParser p = JSON.createParser(answer)) {
      for (JsonToken t = p.nextToken(); t != null; t = p.nextToken()) {
        if (t == JsonToken.FIELD_NAME && p.currentName().equals("revision")) {
          p.nextToken();
          return Long.parseLong(p.getText());
        }
      }
    } catch (IOException | NumberFormatException e) {
      // below
    }
    throw new UncloudException(ExitCodes.SOURCE_UNAVAILABLE, "etcd put " + key + ": unexpected answer");
  }

  /** Asks one endpoint for its status (doctor): the version it reports, or the error. */
  public String status(String endpoint) {
    try {
      return "version " + field(exchange(endpoint, "/v3/maintenance/status", "{}"), "version");
    } catch (IOException | GeneralSecurityException e) {
      return "unreachable: " + describe(e);
    }
  }

  public EtcdSettings settings() {
    return settings;
  }

  private Range range(String key, String rangeEnd, int limit) {
    String body = "{\"key\":\"" + b64(key) + "\"" + (rangeEnd == null ? "" : ",\"range_end\":\"" + b64(rangeEnd) + "\"")
        + (limit > 0 ? ",\"limit\":" + limit : "") + "}";
    String answer = post("/v3/kv/range", body, "key " + key);
    Map<String, String> out = new LinkedHashMap<>();
    long revision = 0;
    try (JsonParser p = JSON.createParser(answer)) {
      if (p.nextToken() != JsonToken.START_OBJECT) {
        throw new IOException("not a JSON object");
      }
      while (p.nextToken() == JsonToken.FIELD_NAME) {
        String f = p.currentName();
        JsonToken t = p.nextToken();
        if (f.equals("kvs") && t == JsonToken.START_ARRAY) {
          while (p.nextToken() == JsonToken.START_OBJECT) {
            String k = null;
            String v = "";
            while (p.nextToken() == JsonToken.FIELD_NAME) {
              String name = p.currentName();
              p.nextToken();
              if (name.equals("key")) {
                k = unb64(p.getText());
              } else if (name.equals("value")) {
                v = unb64(p.getText());
              } else {
                p.skipChildren();
              }
            }
            if (k != null) {
              out.put(k, v);
            }
          }
        } else if (f.equals("header") && t == JsonToken.START_OBJECT) {
          revision = revision(p);
        } else {
          p.skipChildren();
        }
      }
    } catch (IOException | IllegalArgumentException e) {
      throw new UncloudException(ExitCodes.SOURCE_UNAVAILABLE, "etcd key " + key + ": unreadable answer: " + e.getMessage());
    }
    return new Range(revision, out);
  }

  /** The {@code revision} of a response header (the parser is on its START_OBJECT), 0 when absent. */
  static long revision(JsonParser p) throws IOException {
    long revision = 0;
    while (p.nextToken() == JsonToken.FIELD_NAME) {
      String name = p.currentName();
      p.nextToken();
      if (name.equals("revision")) {
        revision = Long.parseLong(p.getText());
      } else {
        p.skipChildren();
      }
    }
    return revision;
  }

  /**
   * Opens etcd's watch stream ({@code POST /v3/watch}) on one endpoint: its answer, one JSON object
   * per line, for as long as the connection lasts; the caller closes it (and may {@link
   * HttpURLConnection#disconnect()} it from another thread to stop a read).
   *
   * @param fromRevision the first revision to report (the one after the agent's full read)
   * @param idleMillis how long a read may wait for the next line before it times out
   */
  public HttpURLConnection watch(String endpoint, String prefix, long fromRevision, int idleMillis)
      throws IOException, GeneralSecurityException {
    String body = "{\"create_request\":{\"key\":\"" + b64(prefix) + "\",\"range_end\":\"" + b64(rangeEnd(prefix))
        + "\",\"start_revision\":" + fromRevision + "}}";
    HttpURLConnection c = open(endpoint, "/v3/watch", body, idleMillis);
    check(c);
    return c;
  }

  /**
   * Whether {@code endpoint} answers a linearizable read of the prefix (a member cut off from its
   * quorum does not): asked before the watch is opened there, since a watch on such a member is
   * accepted and then stays silent. Returns the store's revision.
   */
  public long quorum(String endpoint, String prefix) throws IOException, GeneralSecurityException {
    String body = "{\"key\":\"" + b64(prefix) + "\",\"range_end\":\"" + b64(rangeEnd(prefix)) + "\",\"count_only\":true}";
    String answer = exchange(endpoint, "/v3/kv/range", body);
    try (JsonParser p = JSON.createParser(answer)) {
      if (p.nextToken() == JsonToken.START_OBJECT) {
        while (p.nextToken() == JsonToken.FIELD_NAME) {
          String f = p.currentName();
          if (p.nextToken() == JsonToken.START_OBJECT && f.equals("header")) {
            return revision(p);
          }
          p.skipChildren();
        }
      }
    } catch (IllegalArgumentException e) {
      // below
    }
    throw new IOException("unexpected answer to a range request");
  }

  /** Why an exception ended a request: one printable line ("timed out", "Connection refused", ...). */
  public static String why(Exception e) {
    return describe(e);
  }

  private String post(String path, String body, String what) {
    if (down != null) {
      throw down;
    }
    List<String> errors = new ArrayList<>();
    for (String endpoint : settings.endpoints()) {
      try {
        return exchange(endpoint, path, body);
      } catch (IOException | GeneralSecurityException e) {
        errors.add(endpoint + ": " + describe(e));
      }
    }
    down = new UncloudException(ExitCodes.SOURCE_UNAVAILABLE, "etcd " + what + ": no endpoint answered ("
        + String.join("; ", errors) + ")");
    throw down;
  }

  /** One request to one endpoint; the answer's body when the status is 200. */
  private String exchange(String endpoint, String path, String body) throws IOException, GeneralSecurityException {
    HttpURLConnection c = open(endpoint, path, body, settings.timeoutMillis());
    check(c);
    try (InputStream in = c.getInputStream()) {
      return new String(in.readAllBytes(), StandardCharsets.UTF_8);
    }
  }

  /** Sends one request; the connection, its answer not read yet. */
  private HttpURLConnection open(String endpoint, String path, String body, int readTimeoutMillis)
      throws IOException, GeneralSecurityException {
    HttpURLConnection c = (HttpURLConnection) new URL(endpoint + path).openConnection(Proxy.NO_PROXY);
    if (c instanceof HttpsURLConnection s && !(settings.ca() + settings.cert()).isEmpty()) {
      s.setSSLSocketFactory(tls());
    }
    c.setConnectTimeout(settings.timeoutMillis());
    c.setReadTimeout(readTimeoutMillis);
    c.setRequestMethod("POST");
    c.setDoOutput(true);
    c.setRequestProperty("Content-Type", "application/json");
    byte[] b = body.getBytes(StandardCharsets.UTF_8);
    c.setFixedLengthStreamingMode(b.length);
    try (OutputStream o = c.getOutputStream()) {
      o.write(b);
    }
    return c;
  }

  /** Throws unless the answer's status is 200 (the exception names the status and etcd's message). */
  private static void check(HttpURLConnection c) throws IOException {
    int status = c.getResponseCode();
    if (status != 200) {
      InputStream e = c.getErrorStream();
      String text = e == null ? "" : new String(e.readNBytes(4096), StandardCharsets.UTF_8);
      String message = text.isEmpty() ? "" : field(text, "message");
      throw new IOException("HTTP " + status + (message.isEmpty() ? "" : ": " + message));
    }
  }

  private static String field(String json, String name) {
    try (JsonParser p = JSON.createParser(json)) {
      for (JsonToken t = p.nextToken(); t != null; t = p.nextToken()) {
        if (t == JsonToken.FIELD_NAME && p.currentName().equals(name)) {
          p.nextToken();
          return p.getText();
        }
      }
    } catch (IOException e) {
      // none
    }
    return "";
  }

  private static String describe(Exception e) {
    if (e instanceof SocketTimeoutException) {
      return "timed out";
    }
    String m = e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
    return EtcdValue.printable(m.lines().findFirst().orElse(m));
  }

  /** TLS with {@code etcd_ca} as the only trusted CA and {@code etcd_cert}/{@code etcd_key} as client identity. */
  private synchronized SSLSocketFactory tls() throws IOException, GeneralSecurityException {
    if (tls == null) {
      CertificateFactory cf = CertificateFactory.getInstance("X.509");
      TrustManagerFactory tmf = null;
      if (!settings.ca().isEmpty()) {
        KeyStore trust = KeyStore.getInstance("PKCS12");
        trust.load(null, null);
        int n = 0;
        for (Certificate ca : cf.generateCertificates(new ByteArrayInputStream(Files.readAllBytes(Path.of(settings.ca()))))) {
          trust.setCertificateEntry("ca" + n++, ca);
        }
        if (n == 0) {
          throw new GeneralSecurityException("etcd_ca " + settings.ca() + " holds no certificate");
        }
        tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(trust);
      }
      KeyManagerFactory kmf = null;
      if (!settings.cert().isEmpty()) {
        Certificate[] chain = cf.generateCertificates(new ByteArrayInputStream(Files.readAllBytes(Path.of(settings.cert()))))
            .toArray(new Certificate[0]);
        KeyStore id = KeyStore.getInstance("PKCS12");
        id.load(null, null);
        id.setKeyEntry("client", privateKey(settings.key()), new char[0], chain);
        kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
        kmf.init(id, new char[0]);
      }
      SSLContext ctx = SSLContext.getInstance("TLS");
      ctx.init(kmf == null ? null : kmf.getKeyManagers(), tmf == null ? null : tmf.getTrustManagers(), null);
      tls = ctx.getSocketFactory();
    }
    return tls;
  }

  private static PrivateKey privateKey(String file) throws IOException, GeneralSecurityException {
    String pem = Files.readString(Path.of(file));
    int a = pem.indexOf("-----BEGIN PRIVATE KEY-----");
    int b = pem.indexOf("-----END PRIVATE KEY-----");
    if (a < 0 || b < a) {
      throw new GeneralSecurityException("etcd_key " + file + " is not a PEM PKCS#8 key (BEGIN PRIVATE KEY);"
          + " convert it with 'openssl pkcs8 -topk8 -nocrypt'");
    }
    byte[] der = Base64.getMimeDecoder().decode(pem.substring(a + 27, b));
    for (String alg : List.of("RSA", "EC", "Ed25519")) {
      try {
        return KeyFactory.getInstance(alg).generatePrivate(new PKCS8EncodedKeySpec(der));
      } catch (GeneralSecurityException e) {
        // the next algorithm
      }
    }
    throw new GeneralSecurityException("etcd_key " + file + ": not an RSA, EC or Ed25519 key");
  }

  private static String b64(String s) {
    return Base64.getEncoder().encodeToString(s.getBytes(StandardCharsets.UTF_8));
  }

  private static String unb64(String s) {
    return new String(Base64.getDecoder().decode(s), StandardCharsets.UTF_8);
  }
}
