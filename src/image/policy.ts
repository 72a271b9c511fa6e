// Default policy of the image service (Glance's rule names, prefixed). Targets carry the image's
// `owner` (as project_id too), `visibility`, and for member calls `member_id`. Visibility itself
// (who may see a private, shared or community image) is enforced by the service, not here.
export const IMAGE_POLICY: Record<string, string> = {
  'image:owner': 'rule:admin or (role:member and project_id:%(owner)s)',
  'image:reader': 'rule:admin or role:reader',
  'image:get_image': 'rule:image:reader',
  'image:get_images': 'rule:image:reader',
  'image:add_image': 'rule:image:owner',
  'image:modify_image': 'rule:image:owner',
  'image:delete_image': 'rule:image:owner',
  'image:publicize_image': 'rule:admin',
  'image:communitize_image': 'rule:image:owner',
  'image:set_image_owner': 'rule:admin',
  'image:upload_image': 'rule:image:owner',
  'image:download_image': 'rule:image:reader',
  'image:download_deactivated': 'rule:admin',
  'image:deactivate': 'rule:admin',
  'image:reactivate': 'rule:admin',
  'image:stage_image': 'rule:image:owner',
  'image:import_image': 'rule:image:owner',
  'image:copy_image': 'rule:admin',
  'image:get_members': 'rule:image:reader',
  'image:get_member': 'rule:image:reader',
  'image:add_member': 'rule:image:owner',
  'image:delete_member': 'rule:image:owner',
  'image:modify_member': 'rule:admin or (role:member and project_id:%(member_id)s)',
  'image:get_info': 'rule:image:reader',
};
