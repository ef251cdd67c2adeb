/**
 * The image record as the driver gets it: a Glance v2 image turned into
 * ImageMeta (nova.objects.ImageMeta.from_image_ref). Both the compute manager
 * (rebuild, resize) and the docker image service read Glance records, so the
 * one mapping lives here.
 */
import { imageProperties, type GlanceImage } from '../clients/glance/client.js';
import type { ImageMeta } from './types.js';

/** A Glance v2 record as the ImageMeta the driver gets (custom properties under `properties`). */
export function imageMetaFromGlance(img: GlanceImage): ImageMeta {
  const meta: ImageMeta = { id: img.id, properties: imageProperties(img) };
  if (typeof img.name === 'string') meta.name = img.name;
  if (typeof img.container_format === 'string') meta.container_format = img.container_format;
  if (typeof img.disk_format === 'string') meta.disk_format = img.disk_format;
  if (typeof img.checksum === 'string') meta.checksum = img.checksum;
  if (typeof img.os_hash_algo === 'string') meta.os_hash_algo = img.os_hash_algo;
  if (typeof img.os_hash_value === 'string') meta.os_hash_value = img.os_hash_value;
  if (typeof img.size === 'number') meta.size = img.size;
  return meta;
}
