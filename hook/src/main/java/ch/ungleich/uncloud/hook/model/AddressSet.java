package ch.ungleich.uncloud.hook.model;

import java.math.BigInteger;
import java.util.ArrayList;
import java.util.List;

/**
 * One family's allowed addresses as sorted, merged, non-overlapping ranges. nft rejects overlapping
 * intervals in a set, and a listed address inside a listed prefix is legal metadata, so merging is
 * done here, in the pure core, before anything is rendered.
 */
public record AddressSet(boolean v6, List<Range> ranges) {

  /** An inclusive range of addresses. */
  public record Range(BigInteger first, BigInteger last) {}

  public static AddressSet of(boolean v6, List<IpPrefix> prefixes) {
    List<IpPrefix> sorted = new ArrayList<>();
    for (IpPrefix p : prefixes) {
      if (p.v6() == v6) {
        sorted.add(p);
      }
    }
    sorted.sort(null);
    List<Range> out = new ArrayList<>();
    for (IpPrefix p : sorted) {
      if (!out.isEmpty()) {
        Range prev = out.get(out.size() - 1);
        if (p.first().compareTo(prev.last().add(BigInteger.ONE)) <= 0) {
          out.set(out.size() - 1, new Range(prev.first(), prev.last().max(p.last())));
          continue;
        }
      }
      out.add(new Range(p.first(), p.last()));
    }
    return new AddressSet(v6, List.copyOf(out));
  }

  public boolean isEmpty() {
    return ranges.isEmpty();
  }

  /** Set elements in address notation: {@code 192.0.2.10}, {@code 198.51.100.0/24}, {@code a-b}. */
  public List<String> elements() {
    List<String> out = new ArrayList<>();
    for (Range r : ranges) {
      out.add(element(r, IpPrefix.format(r.first, v6), IpPrefix.format(r.last, v6)));
    }
    return out;
  }

  /**
   * Set elements as 128-bit integers, for raw payload matches such as the NDP target at
   * {@code @th,64,128} (nft 1.0.6 has no {@code icmpv6 taddr}).
   */
  public List<String> hexElements() {
    List<String> out = new ArrayList<>();
    for (Range r : ranges) {
      String a = String.format("0x%032x", r.first);
      String b = String.format("0x%032x", r.last);
      out.add(r.first.equals(r.last) ? a : a + "-" + b);
    }
    return out;
  }

  private String element(Range r, String first, String last) {
    if (r.first.equals(r.last)) {
      return first;
    }
    BigInteger size = r.last.subtract(r.first).add(BigInteger.ONE);
    int bits = v6 ? 128 : 32;
    if (size.bitCount() == 1 && r.first.mod(size).signum() == 0) {
      return first + "/" + (bits - (size.bitLength() - 1));
    }
    return first + "-" + last;
  }
}
