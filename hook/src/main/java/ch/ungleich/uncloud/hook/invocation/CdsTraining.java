package ch.ungleich.uncloud.hook.invocation;

import ch.ungleich.uncloud.hook.ExitCodes;
import ch.ungleich.uncloud.hook.UncloudException;
import ch.ungleich.uncloud.hook.log.Syslog;
import ch.ungleich.uncloud.hook.nft.ProcessNftRunner;
import ch.ungleich.uncloud.hook.source.EtcdValue;
import ch.ungleich.uncloud.libvirtxml.DomainReader;
import ch.ungleich.uncloud.libvirtxml.domain.Domain;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Base64;
import java.util.Map;

/**
 * {@code uncloud-hook cds-training DIR}: the training run behind the hook's CDS archive (install/files/setup
 * runs it with {@code -XX:ArchiveClassesAtExit}). {@code DIR} holds {@code conf} (a stand-in nft, a scratch
 * state_dir) and {@code domain.xml}. It runs {@code start begin} twice in this JVM, so that the archive
 * holds what both sources load: once with the metadata, once with {@code source = etcd} against a
 * one-shot stand-in of etcd's JSON gateway on loopback that answers with the same addresses. Without
 * the second run, {@code HttpURLConnection} and jackson-core would load from the jar on every etcd
 * hook call (measured +60 ms per call). No network beyond loopback is touched.
 */
public final class CdsTraining {
  private CdsTraining() {}

  public static int main(String[] args, PrintStream err) {
    if (args.length != 1) {
      err.println("uncloud-hook: usage: uncloud-hook cds-training DIR");
      return ExitCodes.USAGE;
    }
    Path dir = Path.of(args[0]);
    try {
      String xml = Files.readString(dir.resolve("domain.xml"));
      String conf = Files.readString(dir.resolve("conf"));
      Domain d = DomainReader.read(xml);
      String value = EtcdValue.render(d.metadata.firewall);
      int rc = run(dir.resolve("conf"), xml, d, err);
      try (ServerSocket server = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
        Thread answer = new Thread(() -> answerOnce(server, value));
        answer.setDaemon(true);
        answer.start();
        Path etcdConf = dir.resolve("conf-etcd");
        Files.writeString(etcdConf, conf + "\nsource = etcd\netcd_endpoints = http://127.0.0.1:" + server.getLocalPort() + "\n");
        rc = Math.max(rc, run(etcdConf, xml, d, err));
      }
      return rc;
    } catch (IOException | UncloudException | NullPointerException e) {
      err.println("uncloud-hook: cds-training: " + e);
      return ExitCodes.INVALID;
    }
  }

  private static int run(Path conf, String xml, Domain d, PrintStream err) {
    // a training run is no event of this host: its lines stay out of the journal (a socket path that never exists)
    HookMain h = new HookMain(Map.of("UNCLOUD_HOOK_CONFIG", conf.toString()), new PrintStream(OutputStream.nullOutputStream()),
        err, c -> new ProcessNftRunner(c.nft()), new Syslog(conf.resolveSibling("no-syslog")));
    return h.run(new String[] {d.name, "start", "begin", "-"}, new ByteArrayInputStream(xml.getBytes(StandardCharsets.UTF_8)));
  }

  /** One HTTP/1.1 request, answered as etcd's {@code /v3/kv/range} would for a key holding {@code value}. */
  private static void answerOnce(ServerSocket server, String value) {
    try (Socket s = server.accept()) {
      InputStream in = s.getInputStream();
      StringBuilder head = new StringBuilder();
      while (head.indexOf("\r\n\r\n") < 0) {
        int c = in.read();
        if (c < 0) {
          return;
        }
        head.append((char) c);
      }
      String h = head.toString().toLowerCase(java.util.Locale.ROOT);
      int at = h.indexOf("content-length:");
      int length = at < 0 ? 0 : Integer.parseInt(h.substring(at + 15, h.indexOf('\r', at)).strip());
      String request = new String(in.readNBytes(length), StandardCharsets.UTF_8);
      int k = request.indexOf("\"key\":\"") + 7;
      String key = k < 7 ? "" : request.substring(k, request.indexOf('"', k)); // base64 already
      byte[] body = ("{\"header\":{\"revision\":\"1\"},\"kvs\":[{\"key\":\"" + key + "\",\"mod_revision\":\"1\",\"value\":\""
          + Base64.getEncoder().encodeToString(value.getBytes(StandardCharsets.UTF_8)) + "\"}],\"count\":\"1\"}")
          .getBytes(StandardCharsets.UTF_8);
      OutputStream out = s.getOutputStream();
      out.write(("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " + body.length
          + "\r\nConnection: close\r\n\r\n").getBytes(StandardCharsets.UTF_8));
      out.write(body);
      out.flush();
    } catch (IOException | RuntimeException e) {
      // the hook call then fails and says so; the archive is still made
    }
  }
}
