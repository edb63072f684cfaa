package ch.ungleich.uncloud.tests;

import static ch.ungleich.uncloud.tests.lab.Verdict.DELIVERED;

import ch.ungleich.uncloud.tests.lab.FrameBatch;
import ch.ungleich.uncloud.tests.lab.FrameTool;
import ch.ungleich.uncloud.tests.lab.GuestImage;
import ch.ungleich.uncloud.tests.lab.NetnsLab;
import ch.ungleich.uncloud.tests.lab.Proc;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * "Fragmented traffic from the VM's own addresses arrives complete": the matrix shows that every
 * fragment reaches the observer byte for byte; this check gives the observer addresses (it plays the
 * router, 192.0.2.1 and 2001:db8:0:1::1) and lets its kernel reassemble. The UDP datagrams must reach
 * a socket there with exactly the bytes sent, and the two fragmented echo requests must be counted by
 * the observer's ICMP and ICMPv6 (they only are once reassembled).
 */
final class ReassemblyCheck {
  private ReassemblyCheck() {}

  /** A UDP datagram as the receiver reports it. */
  record Datagram(String source, int port, int length, String sha256) {}

  record Result(List<String> missingFragments, List<Datagram> datagrams, Map<String, Long> counters,
      String receiverStatus) {}

  /** The UDP datagrams of {@link FrameMatrix#FRAGMENTED} as the receiver must see them. */
  static List<Datagram> expected() {
    byte[] range = new byte[256];
    for (int i = 0; i < 256; i++) {
      range[i] = (byte) i;
    }
    byte[] looks67 = new byte[392 + 4 + 100];
    java.util.Arrays.fill(looks67, (byte) 'q');
    looks67[392] = 0x00;
    looks67[393] = 0x43;
    looks67[394] = 0x00;
    looks67[395] = 0x44;
    String ip4 = FrameMatrix.GUEST.ip4();
    String ip6 = FrameMatrix.GUEST.ip6();
    return List.of(
        new Datagram(ip4, 40001, 1024, GuestImage.sha(repeat(range, 4))),
        new Datagram(ip4, 40003, looks67.length, GuestImage.sha(looks67)),
        new Datagram(ip6, 40004, 1536, GuestImage.sha(repeat(range, 6))));
  }

  /**
   * Sends every fragment of the fragmented packets (all, or without the last fragment of the first
   * packet when {@code dropOne}: the negative control) from VM 0 and reports what arrived.
   */
  static Result run(FrameTool tool, NetnsLab lab, boolean dropOne) {
    String obs = lab.observer().netns();
    lab.exec(obs, "sh", "-ec", "echo 0 > /proc/sys/net/ipv4/conf/all/rp_filter;"
        + " echo 0 > /proc/sys/net/ipv4/conf/eth0/rp_filter").ok();
    lab.exec(obs, "ip", "addr", "add", "192.0.2.1/24", "dev", "eth0").ok();
    lab.exec(obs, "ip", "addr", "add", "2001:db8:0:1::1/64", "dev", "eth0", "nodad").ok();
    Map<String, Long> before = counters(lab);
    Process receiver;
    try {
      receiver = new ProcessBuilder("ip", "netns", "exec", obs, FrameTool.PYTHON,
          FrameTool.script().toString(), "receive", "5000", "8", String.valueOf(expected().size()))
          .redirectErrorStream(true).start();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    List<String> lines = new ArrayList<>();
    List<String> missing = new ArrayList<>();
    try (BufferedReader out = new BufferedReader(
        new InputStreamReader(receiver.getInputStream(), StandardCharsets.UTF_8))) {
      String ready = out.readLine();
      if (!"READY".equals(ready)) {
        throw new IllegalStateException("receiver said " + ready);
      }
      FrameBatch b = tool.batch(lab);
      List<String> names = new ArrayList<>();
      boolean first = true;
      for (Map.Entry<String, Integer> p : FrameMatrix.FRAGMENTED.entrySet()) {
        int n = first && dropOne ? p.getValue() - 1 : p.getValue();
        first = false;
        for (int i = 0; i < n; i++) {
          String name = "reassembly-" + names.size();
          names.add(name);
          b.add(name, lab.vm(0), FrameMatrix.GUEST, FrameMatrix.frag(p.getKey(), i));
        }
      }
      Map<String, FrameBatch.Outcome> got = b.run();
      for (String name : names) {
        if (got.get(name).verdict() != DELIVERED) {
          missing.add(got.get(name).describe());
        }
      }
      String line;
      while ((line = out.readLine()) != null) {
        lines.add(line);
      }
      receiver.waitFor(15, TimeUnit.SECONDS);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    } finally {
      receiver.destroyForcibly();
    }
    Map<String, Long> after = counters(lab);
    Map<String, Long> delta = new LinkedHashMap<>();
    after.forEach((k, v) -> delta.put(k, v - before.getOrDefault(k, 0L)));
    List<Datagram> dgrams = new ArrayList<>();
    String status = "none";
    for (String l : lines) {
      String[] f = l.split(" ");
      if (f[0].equals("DGRAM") && f.length == 5) {
        dgrams.add(new Datagram(f[1], Integer.parseInt(f[2]), Integer.parseInt(f[3]), f[4]));
      } else {
        status = l;
      }
    }
    Result r = new Result(missing, dgrams, delta, status);
    System.err.println("reassembly at the observer" + (dropOne ? " (one fragment withheld)" : "")
        + ": " + dgrams.size() + " datagrams, counters " + delta + ", receiver " + status);
    return r;
  }

  /** Throws unless every fragment arrived and the receiver got everything complete. */
  static void assertComplete(Result r, String context) {
    List<String> wrong = new ArrayList<>(r.missingFragments());
    List<Datagram> want = expected();
    if (!new java.util.HashSet<>(r.datagrams()).equals(new java.util.HashSet<>(want))
        || r.datagrams().size() != want.size()) {
      wrong.add("datagrams received " + r.datagrams() + ", expected " + want);
    }
    for (String k : List.of("IpReasmOKs", "Ip6ReasmOKs", "IcmpInEchos", "Icmp6InEchos")) {
      long expect = k.equals("IpReasmOKs") ? 3 : k.equals("Ip6ReasmOKs") ? 2 : 1;
      if (r.counters().getOrDefault(k, 0L) != expect) {
        wrong.add(k + " rose by " + r.counters().get(k) + ", expected " + expect);
      }
    }
    if (!wrong.isEmpty()) {
      throw new AssertionError("fragmented traffic from own addresses did not arrive complete:\n"
          + String.join("\n", wrong) + "\n" + context);
    }
  }

  /** IpReasmOKs, IcmpInEchos (/proc/net/snmp) and Ip6ReasmOKs, Icmp6InEchos (snmp6) of the observer. */
  static Map<String, Long> counters(NetnsLab lab) {
    Map<String, Long> c = new LinkedHashMap<>();
    String snmp = lab.exec(lab.observer().netns(), "cat", "/proc/net/snmp").ok().out();
    String[] rows = snmp.split("\n");
    for (int i = 0; i + 1 < rows.length; i++) {
      String[] h = rows[i].trim().split("\\s+");
      String[] v = rows[i + 1].trim().split("\\s+");
      if (h[0].equals(v[0]) && (h[0].equals("Ip:") || h[0].equals("Icmp:"))) {
        for (int j = 1; j < h.length && j < v.length; j++) {
          String key = h[0].replace(":", "") + h[j];
          if (key.equals("IpReasmOKs") || key.equals("IcmpInEchos")) {
            c.put(key, Long.parseLong(v[j]));
          }
        }
      }
    }
    for (String l : lab.exec(lab.observer().netns(), "cat", "/proc/net/snmp6").ok().out().split("\n")) {
      String[] f = l.trim().split("\\s+");
      if (f.length == 2 && (f[0].equals("Ip6ReasmOKs") || f[0].equals("Icmp6InEchos"))) {
        c.put(f[0], Long.parseLong(f[1]));
      }
    }
    return c;
  }

  private static byte[] repeat(byte[] b, int n) {
    byte[] out = new byte[b.length * n];
    for (int i = 0; i < n; i++) {
      System.arraycopy(b, 0, out, i * b.length, b.length);
    }
    return out;
  }
}
