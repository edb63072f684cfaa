package ch.ungleich.uncloud.libvirtxml;

/** An XML document could not be read; the message is one line for an operator. */
public class XmlException extends RuntimeException {
  public XmlException(String message) {
    super(message);
  }
}
